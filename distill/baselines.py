"""Baselines of Wang et al. (Sec. 4, Table 1): real training sets of the distilled size, and kNN.

With ``k = n / C`` samples per class:

- ``random_real``: ``k`` random real samples of every class, ``R`` sets drawn;
- ``optimized_real``: ``candidates`` random sets, the fraction ``keep`` that scores best;
- ``kmeans``: the ``k`` k-means++ centroids of every class (scikit-learn);
- ``average_real``: the class mean ``x̄_c = 1/N_c Σ_{i: y_i = c} x_i``, used ``k`` times;
- ``knn``: ``k``-nearest-neighbour classification (``k ∈ {1, 3}``, l1 or l2 distance)
  with random real samples or k-means centroids as the memory.

A training set is arranged like distilled data (sample ``i`` has class ``i mod C``, ``S``
steps of ``n / S`` samples) and trained with a constant learning rate ``η`` for ``e``
passes, ``θ_{t+1} = θ_t − η ∇ℓ(x_{t mod S}; θ_t)``, ``t < S·e``, or with the learned
rates of a distillation run. The papers report the best cell of the grid
``η ∈ {learned, 1e-3, …, 3e-1} × e ∈ {1, 3, 5}``; here the cell is picked cheaply, with a
few networks on held-out training samples, and only the winner is evaluated in full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor

from .errors import UserError
from .evaluate import accuracies, trained_networks
from .functional import FunctionalNet
from .synthetic import DistilledData, inverse_softplus

TRAINING_BASELINES: tuple[str, ...] = ("random_real", "optimized_real", "kmeans", "average_real")
KNN_GRID: tuple[tuple[int, str], ...] = ((1, "l1"), (1, "l2"), (3, "l1"), (3, "l2"))
MINKOWSKI_P = {"l1": 1, "l2": 2}


def per_class(n: int, num_classes: int) -> int:
    """``k = n / C``; a baseline needs the same number of samples of every class."""
    if n < num_classes or n % num_classes:
        raise UserError(f"a baseline needs the same number of samples per class: synthetic.n = {n} "
                        f"is not a multiple of the {num_classes} classes")
    return n // num_classes


def class_pools(y: Tensor, num_classes: int) -> list[Tensor]:
    """The indices of every class's samples."""
    pools = [torch.nonzero(y == c).flatten() for c in range(num_classes)]
    empty = [c for c, pool in enumerate(pools) if len(pool) == 0]
    if empty:
        raise UserError(f"the training set has no samples of class {empty[0]}")
    return pools


def interleave(per_class_x: Tensor) -> tuple[Tensor, Tensor]:
    """[C, k, ...] samples -> ([k·C, ...] samples, labels) with sample ``i`` of class ``i mod C``."""
    classes, k = per_class_x.shape[:2]
    x = per_class_x.transpose(0, 1).reshape(k * classes, *per_class_x.shape[2:])
    return x, torch.arange(classes).repeat(k)


def random_real(x: Tensor, y: Tensor, k: int, num_classes: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``k`` distinct random real samples of every class (fewer in the pool: with repeats)."""
    chosen = []
    for pool in class_pools(y, num_classes):
        if len(pool) >= k:
            picks = pool[torch.randperm(len(pool), generator=gen)[:k]]
        else:
            picks = pool[torch.randint(len(pool), (k,), generator=gen)]
        chosen.append(x[picks])
    return interleave(torch.stack(chosen))


def average_real(x: Tensor, y: Tensor, k: int, num_classes: int) -> tuple[Tensor, Tensor]:
    """The mean sample of every class, ``x̄_c``, repeated ``k`` times."""
    means = torch.stack([x[pool].mean(0) for pool in class_pools(y, num_classes)])
    return interleave(means[:, None].expand(-1, k, *means.shape[1:]))


def kmeans_centroids(x: Tensor, y: Tensor, k: int, num_classes: int, seed: int) -> tuple[Tensor, Tensor]:
    """The ``k`` k-means++ centroids of every class (Lloyd's algorithm, scikit-learn)."""
    centroids = []
    for pool in class_pools(y, num_classes):
        if len(pool) < k:
            raise UserError(f"k-means needs {k} samples of every class; one class has only {len(pool)}")
        flat = x[pool].reshape(len(pool), -1).double().numpy()
        fit = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=seed).fit(flat)
        centroids.append(torch.from_numpy(fit.cluster_centers_).to(x.dtype).view(k, *x.shape[1:]))
    return interleave(torch.stack(centroids))


def knn_accuracy(memory_x: Tensor, memory_y: Tensor, x: Tensor, y: Tensor, k: int, distance: str) -> float:
    """Accuracy on ``(x, y)`` of the majority label of the ``k`` nearest memory samples
    (``‖x − m‖_1`` or ``‖x − m‖_2``)."""
    classifier = KNeighborsClassifier(n_neighbors=k, p=MINKOWSKI_P[distance])
    classifier.fit(memory_x.reshape(len(memory_x), -1).numpy(), memory_y.numpy())
    return float(classifier.score(x.reshape(len(x), -1).numpy(), y.numpy()))


@dataclass(frozen=True)
class Schedule:
    """A cell of the grid: a constant ``lr`` (or ``None``: a run's learned rates) for ``epochs`` passes."""

    lr: float | None
    epochs: int
    lrs: Tensor  # the T = steps × epochs step sizes

    def describe(self) -> dict[str, float | int | str]:
        return {"lr": "learned" if self.lr is None else self.lr, "epochs": self.epochs}


def schedules(steps: int, lr_grid: list[float], epoch_grid: list[int], learned: Tensor | None = None) -> list[Schedule]:
    """Every ``(η, e)`` of the grid, plus the learned rates ``learned`` ([S·E]) when given."""
    cells = [Schedule(None, len(learned) // steps, learned)] if learned is not None else []
    cells += [Schedule(lr, e, torch.full((steps * e,), lr)) for e in epoch_grid for lr in lr_grid]
    return cells


def training_data(x: Tensor, labels: Tensor, steps: int, lrs: Tensor, num_classes: int) -> DistilledData:
    """Real samples ([n, ...], class labels [n]) as a DistilledData of ``steps`` steps that
    trains with the step sizes ``lrs`` (stored as ``r = softplus⁻¹(η)``)."""
    if len(x) % steps or len(lrs) % steps:
        raise UserError(f"{len(x)} samples and {len(lrs)} learning rates do not split into {steps} steps")
    m = len(x) // steps
    return DistilledData(x.reshape(steps, m, *x.shape[1:]).clone(), labels.reshape(steps, m), raw_lrs(lrs), num_classes)


def with_lrs(data: DistilledData, lrs: Tensor) -> DistilledData:
    """The same samples and labels, trained with the step sizes ``lrs`` ([T]) instead of their own."""
    return DistilledData(data.x.detach(), data.labels.detach(), raw_lrs(lrs), data.num_classes, data.label_softmax)


def raw_lrs(lrs: Tensor) -> Tensor:
    """``r = softplus⁻¹(η)`` for every step size, the form DistilledData stores."""
    return torch.tensor([inverse_softplus(float(lr)) for lr in lrs])


def pooled_accuracies(
    net: FunctionalNet,
    sets: list[tuple[Tensor, Tensor]],
    steps: int,
    lrs: Tensor,
    num_classes: int,
    thetas: Tensor,
    x: Tensor,
    y: Tensor,
    batch_size: int,
) -> Tensor:
    """Accuracy on ``(x, y)`` of every network of ``thetas`` ([N, P]) after training on its
    set: network ``i`` trains on ``sets[i mod len(sets)]``. Returns [N], in the order of ``thetas``."""
    result = torch.empty(len(thetas), device=thetas.device)
    for j, (set_x, set_y) in enumerate(sets[: len(thetas)]):
        rows = torch.arange(j, len(thetas), len(sets), device=thetas.device)
        data = training_data(set_x, set_y, steps, lrs, num_classes).to(thetas.device)
        result[rows] = accuracies(net, trained_networks(net, data, thetas[rows]), x, y, batch_size)
    return result


def grid_search(
    net: FunctionalNet,
    sets: list[tuple[Tensor, Tensor]],
    steps: int,
    cells: list[Schedule],
    num_classes: int,
    thetas: Tensor,
    x: Tensor,
    y: Tensor,
    batch_size: int,
) -> tuple[Schedule, list[dict]]:
    """The cell whose networks reach the highest mean accuracy on ``(x, y)``, and every cell's score."""
    scores = [pooled_accuracies(net, sets, steps, cell.lrs, num_classes, thetas, x, y, batch_size).mean().item() for cell in cells]
    best = int(np.argmax(scores))
    return cells[best], [{**cell.describe(), "val_acc": score} for cell, score in zip(cells, scores)]


def grid_edge(cell: Schedule, lr_grid: list[float], epoch_grid: list[int]) -> str | None:
    """Why a longer or wider grid might do better: the chosen constant-rate cell lies on the
    grid's largest epoch count or its smallest or largest learning rate (``None`` otherwise)."""
    if cell.lr is None:
        return None
    edges = []
    if len(epoch_grid) > 1 and cell.epochs == max(epoch_grid):
        edges.append(f"the largest epoch count ({cell.epochs}); try larger baseline.epochs")
    if len(lr_grid) > 1 and cell.lr in (min(lr_grid), max(lr_grid)):
        side = "smallest" if cell.lr == min(lr_grid) else "largest"
        edges.append(f"the {side} learning rate ({cell.lr:g}); try a wider baseline.lrs")
    return "the chosen cell is at " + " and ".join(edges) if edges else None


def best_sets(sets: list[tuple[Tensor, Tensor]], scores: list[float], keep: float) -> list[tuple[Tensor, Tensor]]:
    """``optimized_real``: the ``⌈keep · len(sets)⌉`` sets of highest ``scores``, best first."""
    order = np.argsort(scores, kind="stable")[::-1][: math.ceil(keep * len(sets))]
    return [sets[i] for i in order]
