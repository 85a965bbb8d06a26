"""Minibatch training passes of stacked networks, and the model trained on the whole training set.

Network ``k`` of a ``[K, P]`` stack takes minibatch steps on its own shuffle of the data,
``θ_k ← opt(θ_k, ∇ 1/B Σ_{i∈batch_k} ℓ(x_i, y_i; θ_k))``: ``vmap(grad(ℓ))`` gives every
network's gradient at once, and since SGD and Adam act element-wise, one optimizer on the
stack is ``K`` independent optimizers. ``distill pretrain`` trains its pools this way;
``train_full`` trains one network with Adam (Kingma & Ba), optionally on flipped and shifted
minibatches and with a step-decayed rate ``η_e = η · γ^⌊e / d⌋``: the denominator of
Sucholutsky & Schonlau's distillation ratio ``acc(distilled) / acc(full data)``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap
from tqdm import tqdm

from .build import build, sampler_of
from .config import Config
from .errors import DivergenceError, UserError
from .evaluate import accuracies
from .files import check_writable, write_json
from .functional import FunctionalNet
from .preprocess import augment
from .report import full_data_key, read_full_data_cache
from .seeds import Stream, generator

DIVERGED_LOSS = 10  # full-data training whose last pass's loss exceeds 10 log C has diverged
# what a cache entry written before train.augment and train.decay_* existed was trained with
SETTINGS_BEFORE_AUGMENTATION = {"augment": [], "decay_epochs": 0, "decay_factor": None}


def train_epoch(net: FunctionalNet, stack: Tensor, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, perms: Tensor,
                batch_size: int, transform: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """One pass of every network over its own permutation ``perms[k]`` in batches of ``batch_size``
    (the last one partial); updates ``stack`` ([K, P]) in place and returns each network's mean
    training loss over the batches [K]. ``transform`` (e.g. an augmentation) maps each batch of
    inputs ([B, ...]) before the step."""
    loss_and_grad = vmap(grad_and_value(net.loss), in_dims=(0, 0, 0))
    total = torch.zeros(len(stack), device=stack.device)
    starts = range(0, perms.shape[1], batch_size)
    for start in starts:
        idx = perms[:, start : start + batch_size]
        inputs = x[idx]
        if transform is not None:
            inputs = transform(inputs.flatten(0, 1)).view_as(inputs)
        grads, losses = loss_and_grad(stack.detach(), inputs, y[idx])
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
    augmentations: tuple[str, ...] = (),
    decay_epochs: int = 0,
    decay_factor: float = 1.0,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """``theta0`` ([P]) trained with Adam for ``epochs`` shuffled passes over ``(x, y)``, every
    minibatch augmented by ``augmentations`` (``preprocess.augment``: ``flip``, ``crop``) and the
    rate of pass ``e`` being ``lr · decay_factor^⌊e / decay_epochs⌋`` (constant when
    ``decay_epochs`` is 0); returns θ ([P]) and each pass's mean training loss ([epochs]).
    ``progress`` shows a bar of the passes with the last one's loss."""
    stack = theta0.detach().clone()[None].requires_grad_()
    optimizer = torch.optim.Adam([stack], lr=lr)
    transform = (lambda batch: augment(batch, augmentations, 1.0, gen)) if augmentations else None
    losses = []
    bar = tqdm(range(epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        optimizer.param_groups[0]["lr"] = lr * decay_factor ** (epoch // decay_epochs) if decay_epochs else lr
        order = torch.randperm(len(y), generator=gen).to(x.device)
        losses.append(train_epoch(net, stack, optimizer, x, y, order[None], batch_size, transform)[0])
        bar.set_postfix(loss=f"{losses[-1].item():.4f}")
    return stack.detach()[0], torch.stack(losses)


def full_data_accuracy(config: Config) -> dict[str, Any]:
    """Test accuracy of ``config``'s model trained on the whole training set (``train`` section),
    from the cache file ``train.cache`` when it holds this dataset/model/seed with the same
    training settings; otherwise trained now and added to the cache. The network starts from
    the config's first held-out initialisation (for fixed init: the fixed network)."""
    t = config.train
    settings = {"epochs": t.epochs, "lr": t.lr, "batch_size": t.batch_size, "init": config.init.kind,
                "scheme": config.init.scheme, "model_options": config.model.options, "augment": list(t.augment),
                "decay_epochs": t.decay_epochs, "decay_factor": t.decay_factor if t.decay_epochs else None}
    cache = read_full_data_cache(t.cache)
    check_writable(Path(t.cache).parent)
    key = full_data_key(config)
    cached = cache.get(key, {}).get("settings")
    if isinstance(cached, dict) and {**SETTINGS_BEFORE_AUGMENTATION, **cached} == settings:
        return {**cache[key], "cached": True}
    setup = build(config)
    if t.augment and setup.dataset.is_text:
        raise UserError(f"train.augment flips and crops images; the samples of {config.dataset.name} are not images")
    started = time.perf_counter()
    theta0 = sampler_of(setup).held_out(1)[0].to(setup.device)
    gen = generator(config.seed, Stream.FULL_DATA)
    theta, losses = train_full(setup.net, theta0, setup.real.train_x, setup.real.train_y, t.epochs, t.lr, t.batch_size, gen,
                               tuple(t.augment), t.decay_epochs, t.decay_factor, config.run.progress)
    if not torch.isfinite(theta).all() or not losses[-1] <= DIVERGED_LOSS * math.log(setup.dataset.num_classes):
        raise DivergenceError(f"full-data training diverged (last pass's training loss {losses[-1].item():.4g}, far above "
                              f"the log C = {math.log(setup.dataset.num_classes):.3g} of a network that guesses); lower "
                              f"train.lr (now {t.lr:g}); nothing was cached")
    acc = accuracies(setup.net, theta[None], setup.real.test_x, setup.real.test_y, config.eval.batch_size).item()
    Path(t.cache).parent.mkdir(parents=True, exist_ok=True)
    entry = {"test_acc": acc, "train_size": len(setup.real.train_y), "settings": settings,
             "seconds": round(time.perf_counter() - started, 2), "device": str(setup.device)}
    cache = read_full_data_cache(t.cache)
    cache[key] = entry
    write_json(t.cache, cache)
    return {**entry, "cached": False}
