"""Minibatch training passes of stacked networks, and the model trained on the whole training set.

Network ``k`` of a ``[K, P]`` stack takes minibatch steps on its own shuffle of the data,
``θ_k ← opt(θ_k, ∇ 1/B Σ_{i∈batch_k} ℓ(x_i, y_i; θ_k))``: ``vmap(grad(ℓ))`` gives every
network's gradient at once, and since SGD and Adam act element-wise, one optimizer on the
stack is ``K`` independent optimizers. ``distill pretrain`` trains its pools this way;
``train_full`` trains one network with Adam (Kingma & Ba), the denominator of Sucholutsky &
Schonlau's distillation ratio ``acc(distilled) / acc(full data)``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap

from .build import build, sampler_of
from .config import Config
from .errors import DivergenceError
from .evaluate import accuracies
from .files import check_writable, write_json
from .functional import FunctionalNet
from .report import full_data_key, read_full_data_cache
from .seeds import Stream, generator

DIVERGED_LOSS = 10  # full-data training whose last pass's loss exceeds 10 log C has diverged


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


def full_data_accuracy(config: Config) -> dict[str, Any]:
    """Test accuracy of ``config``'s model trained on the whole training set (``train`` section),
    from the cache file ``train.cache`` when it holds this dataset/model/seed with the same
    training settings; otherwise trained now and added to the cache. The network starts from
    the config's first held-out initialisation (for fixed init: the fixed network)."""
    settings = {"epochs": config.train.epochs, "lr": config.train.lr, "batch_size": config.train.batch_size,
                "init": config.init.kind, "scheme": config.init.scheme, "model_options": config.model.options}
    cache = read_full_data_cache(config.train.cache)
    check_writable(Path(config.train.cache).parent)
    key = full_data_key(config)
    if key in cache and cache[key].get("settings") == settings:
        return {**cache[key], "cached": True}
    setup = build(config)
    started = time.perf_counter()
    theta0 = sampler_of(setup).held_out(1)[0].to(setup.device)
    gen = generator(config.seed, Stream.FULL_DATA)
    theta, losses = train_full(setup.net, theta0, setup.real.train_x, setup.real.train_y, config.train.epochs,
                               config.train.lr, config.train.batch_size, gen)
    if not torch.isfinite(theta).all() or not losses[-1] <= DIVERGED_LOSS * math.log(setup.dataset.num_classes):
        raise DivergenceError(f"full-data training diverged (last pass's training loss {losses[-1].item():.4g}, far above "
                              f"the log C = {math.log(setup.dataset.num_classes):.3g} of a network that guesses); lower "
                              f"train.lr (now {config.train.lr:g}); nothing was cached")
    acc = accuracies(setup.net, theta[None], setup.real.test_x, setup.real.test_y, config.eval.batch_size).item()
    Path(config.train.cache).parent.mkdir(parents=True, exist_ok=True)
    entry = {"test_acc": acc, "train_size": len(setup.real.train_y), "settings": settings,
             "seconds": round(time.perf_counter() - started, 2), "device": str(setup.device)}
    cache = read_full_data_cache(config.train.cache)
    cache[key] = entry
    write_json(config.train.cache, cache)
    return {**entry, "cached": False}
