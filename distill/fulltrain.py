"""The model trained on the whole training set: the denominator of the distillation ratio.

Minibatch training of one weight vector with Adam (Kingma & Ba) on the mean cross-entropy,
``θ ← Adam(θ, ∇_θ 1/B Σ_{i∈batch} ℓ(x_i, y_i; θ))``, for a number of shuffled passes; it is
``pretrain.train_epoch`` on a stack of one network. Sucholutsky & Schonlau's distillation
ratio is then ``acc(distilled) / acc(full data)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .functional import FunctionalNet
from .pretrain import train_epoch


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
    stack = theta0.detach().clone()[None].requires_grad_()
    optimizer = torch.optim.Adam([stack], lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen).to(x.device)
        train_epoch(net, stack, optimizer, x, y, order[None], min(batch_size, len(y)))
    return stack.detach()[0]
