"""Resizing and channel conversion of image datasets, applied once at load time.

So that datasets of different sizes and channel counts can feed one model (8×8 digits
or 16×16 USPS as 28×28 MNIST-like images, grey images as 3-channel SVHN-like ones):

    resize    x' = bilinear resampling of x to H'×W'  (``F.interpolate``, half-pixel centres,
              antialiased when shrinking; a convex combination, so pixels stay in [0, 1])
    channels  1 → 3: the grey channel repeated 3 times (mean and std repeated);
              3 → 1: luma ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601), normalised with
              the train split's own mean and std
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from distill.datasets.images import ImageArrays
from distill.errors import UserError

LUMA = (0.299, 0.587, 0.114)
IMAGES_PER_CHUNK = 4096  # bounds the temporary memory of one interpolate call


def image_size(resize: object) -> tuple[int, int]:
    """``resize`` as (height, width): an int ``s`` means s×s; a pair is (height, width)."""
    sides = [resize, resize] if isinstance(resize, int) else resize
    if (
        not isinstance(sides, Sequence)
        or len(sides) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sides)
    ):
        raise UserError(f"dataset.resize must be a positive integer or [height, width]; got {resize!r}")
    return int(sides[0]), int(sides[1])


def resize_pixels(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[N, C, H, W] pixels resampled bilinearly to [N, C, *size]."""
    if tuple(pixels.shape[2:]) == size:
        return pixels
    chunks = [
        F.interpolate(chunk, size=size, mode="bilinear", align_corners=False, antialias=True)
        for chunk in torch.from_numpy(pixels).split(IMAGES_PER_CHUNK)
    ]
    return torch.cat(chunks).numpy()


def convert_channels(arrays: ImageArrays, channels: int) -> ImageArrays:
    """``arrays`` with ``channels`` channels: grey repeated, or RGB to luma (see the module docstring)."""
    have = arrays.train_x.shape[1]
    if channels == have:
        return arrays
    if have == 1:
        return dataclasses.replace(
            arrays,
            train_x=np.repeat(arrays.train_x, channels, axis=1),
            test_x=np.repeat(arrays.test_x, channels, axis=1),
            mean=arrays.mean * channels,
            std=arrays.std * channels,
        )
    if have == 3 and channels == 1:
        weights = np.asarray(LUMA, dtype=np.float32).reshape(1, 3, 1, 1)
        train_x = (arrays.train_x * weights).sum(1, keepdims=True, dtype=np.float32)
        test_x = (arrays.test_x * weights).sum(1, keepdims=True, dtype=np.float32)
        return dataclasses.replace(
            arrays, train_x=train_x, test_x=test_x, mean=(float(train_x.mean()),), std=(float(train_x.std()),)
        )
    raise UserError(f"dataset.channels: cannot turn {have}-channel images into {channels} channels (1 → 3 and 3 → 1 work)")


def reshape_images(arrays: ImageArrays, resize: object = None, channels: object = None) -> ImageArrays:
    """Apply the ``resize`` and ``channels`` options (None: keep) to a reader's arrays."""
    if channels is not None:
        if channels not in (1, 3) or isinstance(channels, bool):  # the images a run draws in grid.png are grey or RGB
            raise UserError(f"dataset.channels must be 1 (grey) or 3 (RGB); got {channels!r}")
        arrays = convert_channels(arrays, channels)
    if resize is not None:
        size = image_size(resize)
        arrays = dataclasses.replace(
            arrays, train_x=resize_pixels(arrays.train_x, size), test_x=resize_pixels(arrays.test_x, size)
        )
    return arrays
