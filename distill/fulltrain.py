"""Minibatch training passes of stacked networks, and the model trained on the whole training set.

Network ``k`` of a ``[K, P]`` stack takes minibatch steps on its own shuffle of the data,
``θ_k ← opt(θ_k, ∇ 1/B Σ_{i∈batch_k} ℓ(x_i, y_i; θ_k))``: ``vmap(grad(ℓ))`` gives every
network's gradient at once, and since SGD and Adam act element-wise, one optimizer on the
stack is ``K`` independent optimizers. ``distill pretrain`` trains its pools this way;
``train_full`` trains one network with Adam (Kingma & Ba), the denominator of Sucholutsky &
Schonlau's distillation ratio ``acc(distilled) / acc(full data)``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap

from .functional import FunctionalNet


def train_epoch(net: FunctionalNet, stack: Tensor, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, perms: Tensor, batch_size: int) -> Tensor:
    """One pass of every network over its own permutation ``perms[k]`` in batches of ``batch_size``
    (the last one partial); updates ``stack`` ([K, P]) in place and returns each network's mean
    training loss over the batches [K]."""
    loss_and_grad = vmap(grad_and_value(net.loss), in_dims=(0, 0, 0))
    total = torch.zeros(len(stack), device=stack.device)
    starts = range(0, perms.shape[1], batch_size)
    for start in starts:
        idx = perms[:, start : start + batch_size]
        grads, losses = loss_and_grad(stack.detach(), x[idx], y[idx])
        stack.grad = grads
        optimizer.step()
        total += losses.detach()
    return total.cpu() / max(len(starts), 1)


def train_full(
    net: FunctionalNet,
    theta0: Tensor,
    x: Tensor,
    y: Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """``theta0`` ([P]) trained with Adam for ``epochs`` shuffled passes over ``(x, y)``;
    returns θ ([P]) and each pass's mean training loss ([epochs])."""
    stack = theta0.detach().clone()[None].requires_grad_()
    optimizer = torch.optim.Adam([stack], lr=lr)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen).to(x.device)
        losses.append(train_epoch(net, stack, optimizer, x, y, order[None], batch_size)[0])
    return stack.detach()[0], torch.stack(losses)
