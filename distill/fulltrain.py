"""The model trained on the whole training set: the denominator of the distillation ratio.

Minibatch training of one weight vector with Adam (Kingma & Ba) on the mean cross-entropy,
``θ ← Adam(θ, ∇_θ 1/B Σ_{i∈batch} ℓ(x_i, y_i; θ))``, for a number of shuffled passes.
Sucholutsky & Schonlau's distillation ratio is then ``acc(distilled) / acc(full data)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .functional import FunctionalNet


def train_full(
    net: FunctionalNet,
    theta0: Tensor,
    x: Tensor,
    y: Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    gen: torch.Generator,
) -> Tensor:
    """``theta0`` ([P]) trained with Adam for ``epochs`` shuffled passes over ``(x, y)``; returns θ ([P])."""
    theta = theta0.detach().clone().requires_grad_()
    optimizer = torch.optim.Adam([theta], lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen).to(x.device)
        for start in range(0, len(y), batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            net.loss(theta, x[rows], y[rows]).backward()
            optimizer.step()
    return theta.detach()
