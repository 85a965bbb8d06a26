"""Continual-learning metrics of Lopez-Paz & Ranzato (Sec. 2).

``R[i, j]`` is the test accuracy on task ``j`` after training on tasks ``0 … i``
(``T × T``); ``b[j]`` the accuracy on task ``j`` of the initial, untrained weights.

    ACC = 1/T Σ_j R[T−1, j]
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
