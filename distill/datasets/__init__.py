"""Datasets by name, held in memory as normalised tensors.

    >>> data = load_dataset("digits")
    >>> data.train_x.shape, data.num_classes
    (torch.Size([1437, 1, 8, 8]), 10)

``DATASETS`` maps each name to a loader ``(root, download, **options) -> ArrayDataset``; the
file formats themselves are read in :mod:`distill.datasets.images` and
:mod:`distill.datasets.text`. Text datasets take options (GloVe file, ``embed_dim``,
``max_len``, ``max_vocab``, ...: :class:`~distill.datasets.text.TextOptions`); image
datasets take ``resize`` and ``channels`` (:mod:`distill.datasets.reshape`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from distill.datasets import images, text
from distill.datasets.reshape import reshape_images
from distill.errors import UserError, unknown

__all__ = ["DATASETS", "ArrayDataset", "load_dataset"]


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A train and a test split as tensors: x float32 [N, C, H, W] normalised per channel, y int64 [N].

    ``mean`` and ``std`` are the per-channel constants the pixels were normalised with
    (``x = (pixel - mean) / std``), so that a viewer can undo it.

    Text datasets are embedded sentences [N, 1, max_len, embed_dim] (mean 0, std 1: not
    normalised) and also carry their ``vocab`` and its ``embeddings`` [V, embed_dim], to
    decode sentences back to words (:func:`~distill.datasets.text.nearest_words`).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    vocab: tuple[str, ...] | None = None
    embeddings: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one sample, (C, H, W)."""
        channels, height, width = self.train_x.shape[1:]
        return channels, height, width

    @property
    def is_text(self) -> bool:
        """Whether the samples are embedded sentences rather than images."""
        return self.vocab is not None


Loader = Callable[..., ArrayDataset]


def normalise(pixels: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """[N, C, H, W] pixels in [0, 1] -> float32 tensor ``(pixels - mean[c]) / std[c]``.

    Works in place: the tensor shares (and overwrites) the memory of ``pixels``, which
    saves a copy of the whole dataset.
    """
    shape = (1, len(mean), 1, 1)
    return torch.from_numpy(pixels).sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape))


def from_images(name: str, arrays: images.ImageArrays, normalised: bool = True) -> ArrayDataset:
    """Normalise (in place) the arrays a reader returned and wrap them as an ArrayDataset.

    ``normalised=False`` keeps the pixels in [0, 1] (``mean`` 0 and ``std`` 1 for every
    channel), as Lopez-Paz & Ranzato's GEM benchmarks feed them."""
    if not normalised:
        channels = len(arrays.mean)
        arrays = replace(arrays, mean=(0.0,) * channels, std=(1.0,) * channels)
    return ArrayDataset(
        name=name,
        train_x=normalise(arrays.train_x, arrays.mean, arrays.std),
        train_y=torch.from_numpy(arrays.train_y),
        test_x=normalise(arrays.test_x, arrays.mean, arrays.std),
        test_y=torch.from_numpy(arrays.test_y),
        num_classes=len(arrays.class_names),
        mean=arrays.mean,
        std=arrays.std,
        class_names=arrays.class_names,
    )


IMAGE_OPTIONS = ("resize", "channels", "normalise")


def load_images(name: str, root: Path, download: bool, **options: object) -> ArrayDataset:
    """Read image dataset ``name`` with its reader and normalise it.

    Options: ``resize`` (a side, or [height, width]) and ``channels``, applied to the
    pixels once before normalisation (:mod:`distill.datasets.reshape`), and ``normalise``
    (true: ``(pixel − mean_c)/std_c``; false: pixels in [0, 1]).
    """
    unknown_options = sorted(set(options) - set(IMAGE_OPTIONS))
    if unknown_options:
        raise UserError(
            f"image dataset '{name}' takes only the options {', '.join(IMAGE_OPTIONS)}; got: {', '.join(unknown_options)}"
        )
    normalised = options.pop("normalise", True)
    if not isinstance(normalised, bool):
        raise UserError(f"dataset.normalise must be true or false, got {normalised!r}")
    return from_images(name, reshape_images(images.READERS[name](root, download), **options), normalised)


def load_text(name: str, root: Path, download: bool, **options: object) -> ArrayDataset:
    """Read text dataset ``name``, embed it with GloVe, and wrap it (see :mod:`distill.datasets.text`)."""
    arrays = text.read_text_dataset(name, root, download, **options)
    return ArrayDataset(
        name=name,
        train_x=torch.from_numpy(arrays.train_x),
        train_y=torch.from_numpy(arrays.train_y),
        test_x=torch.from_numpy(arrays.test_x),
        test_y=torch.from_numpy(arrays.test_y),
        num_classes=len(arrays.class_names),
        mean=(0.0,),
        std=(1.0,),
        class_names=arrays.class_names,
        vocab=arrays.vocab,
        embeddings=torch.from_numpy(arrays.embeddings),
    )


DATASETS: dict[str, Loader] = {
    **{name: functools.partial(load_images, name) for name in images.READERS},
    **{name: functools.partial(load_text, name) for name in text.READERS},
}


def load_dataset(name: str, root: str | Path = "data", download: bool = False, **options: object) -> ArrayDataset:
    """Load dataset ``name`` from ``root`` (laid out as torchvision lays it out) into memory.

    With ``download=True`` missing files are fetched (and checksum-verified where a checksum
    is known) first; without, a missing dataset is a UserError naming the path it looked for.
    ``options`` go to text datasets, e.g. ``load_dataset("trec6", glove="glove/glove.6B.50d.txt",
    embed_dim=50, max_len=400, max_vocab=None)``; image datasets take
    ``resize`` and ``channels`` only, e.g. ``load_dataset("digits", resize=28)``.
    """
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    return DATASETS[name](Path(root).expanduser(), download, **options)
