"""Task streams for continual learning (Lopez-Paz & Ranzato, "Gradient Episodic Memory").

A stream is a sequence of tasks built from one dataset of the registry:

    permuted   task k applies its own fixed random permutation π_k of the pixels to every
               image (all classes in every task); ``samples_per_task`` training images are
               drawn per task, the whole test split (permuted) is every task's test set.
    split      the classes are cut into ``tasks`` disjoint groups of ``classes_per_task``
               (in a seeded random order); task k holds the samples of group k, labelled
               0 … c−1 within the task (the multi-head set-up: a task is tested on its
               own classes only).

``STREAMS`` names the streams a config can use: ``permuted_mnist``, ``permuted_digits``
(the bundled digits, no files needed) and ``split_cifar100``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from distill.datasets import ArrayDataset, load_dataset
from distill.errors import UserError, unknown


@dataclass(frozen=True, eq=False)
class Task:
    """One task: training samples (inputs already transformed), labels local to the task
    (``0 … len(classes)−1``), the global ``classes`` they stand for, and the test split.

    The test inputs are shared with the other tasks of a permuted stream and permuted on
    demand by ``test_inputs()``, so that 20 tasks do not hold 20 copies of the test set."""

    train_x: Tensor
    train_y: Tensor
    classes: Tensor
    test_base_x: Tensor
    test_y: Tensor
    permutation: Tensor | None = None

    def test_inputs(self) -> Tensor:
        return permute_pixels(self.test_base_x, self.permutation) if self.permutation is not None else self.test_base_x


def permute_pixels(x: Tensor, permutation: Tensor) -> Tensor:
    """``x'[n, i] = x[n, π(i)]`` over the flattened pixels of every sample, shape kept."""
    return x.flatten(1)[:, permutation].view_as(x)


def permuted_stream(dataset: ArrayDataset, tasks: int, samples_per_task: int, seed: int) -> list[Task]:
    """``tasks`` tasks, each a fixed random pixel permutation of ``samples_per_task``
    random training images (the whole test split for testing)."""
    available = len(dataset.train_y)
    if samples_per_task > available:
        raise UserError(
            f"continual.stream.samples_per_task = {samples_per_task} exceeds the {available} training samples of {dataset.name}"
        )
    gen = torch.Generator().manual_seed(seed)
    pixels = dataset.train_x[0].numel()
    classes = torch.arange(dataset.num_classes)
    stream = []
    for _ in range(tasks):
        permutation = torch.randperm(pixels, generator=gen)
        chosen = torch.randperm(available, generator=gen)[:samples_per_task]
        train_x = permute_pixels(dataset.train_x[chosen], permutation)
        stream.append(Task(train_x, dataset.train_y[chosen], classes, dataset.test_x, dataset.test_y, permutation))
    return stream


def split_stream(dataset: ArrayDataset, tasks: int, classes_per_task: int, samples_per_task: int | None, seed: int) -> list[Task]:
    """``tasks`` tasks of ``classes_per_task`` disjoint classes that together cover every
    class of ``dataset``; at most ``samples_per_task`` training samples each (None: all)."""
    if tasks * classes_per_task != dataset.num_classes:
        raise UserError(
            f"continual.stream: {tasks} tasks x {classes_per_task} classes = {tasks * classes_per_task} classes, "
            f"but {dataset.name} has {dataset.num_classes}: the tasks must split its classes exactly"
        )
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(dataset.num_classes, generator=gen)
    stream = []
    for classes in order.view(tasks, classes_per_task):
        train_x, train_y = _local(dataset.train_x, dataset.train_y, classes)
        test_x, test_y = _local(dataset.test_x, dataset.test_y, classes)
        if samples_per_task is not None:
            if samples_per_task > len(train_y):
                raise UserError(
                    f"continual.stream.samples_per_task = {samples_per_task} exceeds the {len(train_y)} training samples "
                    f"of a task of {classes_per_task} {dataset.name} classes"
                )
            chosen = torch.randperm(len(train_y), generator=gen)[:samples_per_task]
            train_x, train_y = train_x[chosen], train_y[chosen]
        stream.append(Task(train_x, train_y, classes, test_x, test_y))
    return stream


def _local(x: Tensor, y: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
    """The samples of ``classes`` with labels renumbered to their index in ``classes``."""
    keep = torch.isin(y, classes)
    local = (y[keep, None] == classes).int().argmax(1)
    return x[keep], local


@dataclass(frozen=True)
class StreamKind:
    dataset: str
    kind: str  # "permuted" or "split"
    classes: int  # of the dataset, to check a split before loading it


STREAMS: dict[str, StreamKind] = {
    "permuted_mnist": StreamKind("mnist", "permuted", 10),
    "permuted_digits": StreamKind("digits", "permuted", 10),
    "split_cifar100": StreamKind("cifar100", "split", 100),
}


def load_stream(
    name: str,
    tasks: int,
    samples_per_task: int | None,
    classes_per_task: int | None = None,
    seed: int = 0,
    root: str | Path = "data",
    download: bool = False,
    **options: object,
) -> tuple[ArrayDataset, list[Task]]:
    """The dataset of stream ``name`` and its tasks. Permuted streams need ``samples_per_task``;
    split streams need ``classes_per_task``; ``options`` are the dataset's (e.g. ``normalise``)."""
    if name not in STREAMS:
        raise unknown("stream", name, STREAMS)
    spec = STREAMS[name]
    if spec.kind == "permuted" and (samples_per_task is None or classes_per_task is not None):
        raise UserError(f"stream '{name}' permutes pixels: set continual.stream.samples_per_task, not classes_per_task")
    if spec.kind == "split" and classes_per_task is None:
        raise UserError(f"stream '{name}' splits classes: set continual.stream.classes_per_task")
    if spec.kind == "split" and tasks * classes_per_task != spec.classes:
        raise UserError(
            f"continual.stream: {tasks} tasks x {classes_per_task} classes = {tasks * classes_per_task} classes, "
            f"but {spec.dataset} has {spec.classes}: the tasks must split its classes exactly"
        )
    dataset = load_dataset(spec.dataset, root=root, download=download, **options)
    if spec.kind == "permuted":
        return dataset, permuted_stream(dataset, tasks, samples_per_task, seed)
    return dataset, split_stream(dataset, tasks, classes_per_task, samples_per_task, seed)
