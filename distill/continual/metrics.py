"""Continual-learning metrics of Lopez-Paz & Ranzato (Sec. 2).

``R[i, j]`` is the test accuracy on task ``j`` after training on tasks ``0 … i``
(``T × T``); ``b[j]`` the accuracy on task ``j`` of the initial, untrained weights.

    ACC = 1/T Σ_j R[T−1, j]
    ACC_k = 1/(k+1) Σ_{j≤k} R[k, j]                     (after task k, on the tasks seen so far)
    BWT = 1/(T−1) Σ_{j<T−1} (R[T−1, j] − R[j, j])      (backward transfer)
    FWT = 1/(T−1) Σ_{j>0}   (R[j−1, j] − b[j])          (forward transfer)
"""

from __future__ import annotations

import torch
from torch import Tensor


def average_accuracy(R: Tensor) -> float:
    return R[-1].mean().item()


def backward_transfer(R: Tensor) -> float:
    T = len(R)
    if T < 2:
        return 0.0
    return (R[-1, :-1] - R.diagonal()[:-1]).mean().item()


def forward_transfer(R: Tensor, initial: Tensor) -> float:
    T = len(R)
    if T < 2:
        return 0.0
    before = torch.stack([R[j - 1, j] for j in range(1, T)])
    return (before - initial[1:]).mean().item()


def summary(R: Tensor, initial: Tensor) -> dict[str, float]:
    """``{"acc", "bwt", "fwt"}`` of an accuracy matrix."""
    return {"acc": average_accuracy(R), "bwt": backward_transfer(R), "fwt": forward_transfer(R, initial)}


def accuracy_after_each_task(R: Tensor, done: int) -> list[dict[str, float]]:
    """After each of the first ``done`` tasks ``k``: ``ACC_k`` on the tasks seen so far
    (``seen_tasks_acc``) and the mean accuracy on all tasks (``all_tasks_acc``), as rows
    numbered by ``task`` (1-based); both end at ACC."""
    return [{"task": k + 1, "seen_tasks_acc": R[k, : k + 1].mean().item(), "all_tasks_acc": R[k].mean().item()}
            for k in range(done)]
