"""``distill pretrain``: a pool of networks trained on a source dataset, ``K`` at a time.

Network ``i`` starts from ``θ₀⁽ⁱ⁾ = init(generator(seed, Stream.POOL, i))`` and takes
minibatch steps of its own shuffle of the source training set (pass ``e`` is the
permutation drawn from ``generator(seed, Stream.POOL, i, e)``) on

    ℓ_i(θ) = 1/B Σ_b CE(f(x_b; θ), y_b)

with plain SGD ``θ ← θ − lr (∇ℓ + λθ)`` (optionally with momentum) or Adam. The ``K``
networks of a chunk are one stacked ``[K, P]`` tensor trained by ``fulltrain.train_epoch``.
A partial pool is checkpointed after every epoch, so an interrupted run resumes exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .config import Config, PretrainConfig
from .datasets import ArrayDataset, load_dataset
from .errors import DivergenceError, UserError
from .evaluate import accuracies
from .fulltrain import train_epoch
from .functional import FunctionalNet
from .inits import init_weights
from .models import build_model
from .pool import Architecture, Pool
from .seeds import Stream, generator
from .files import check_writable, load_tensors, save_tensors

LAST_BATCH = "kept"  # how a pass treats its last partial batch; pools before it dropped it (no entry)


def source_dataset(config: Config) -> ArrayDataset:
    """The dataset the pool is trained on: ``pretrain.dataset``, else the config's own."""
    source = config.pretrain.dataset or config.dataset
    return load_dataset(source.name, root=source.root, download=source.download, **source.options)


def make_optimizer(settings: PretrainConfig, stack: Tensor) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD([stack], lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    return torch.optim.Adam([stack], lr=settings.lr, weight_decay=settings.weight_decay)


class PoolCheckpoint:
    """The partial pool next to the pool file (``POOL.partial``), written atomically."""

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".partial")

    def save(self, state: dict[str, Any]) -> None:
        save_tensors(self.path, state)

    def load(self) -> dict[str, Any]:
        state = load_tensors(self.path, "the partial pool", advice="; delete it and start again")
        if (not isinstance(state, dict) or not {"meta", "architecture", "thetas", "test_acc", "chunk"} <= set(state)
                or not isinstance(state["meta"], dict) or not torch.is_tensor(state["thetas"]) or not torch.is_tensor(state["test_acc"])
                or not (state["chunk"] is None or isinstance(state["chunk"], dict))):
            raise UserError(f"the partial pool {self.path} is corrupt (it lacks its state); delete it and start again")
        return state


def pretrain(config: Config, out: str | Path, resume: bool = False, on_epoch: Callable[[int, int], None] | None = None) -> Pool:
    """Train ``config.pretrain.networks`` networks on the source dataset and save them as a pool at ``out``.

    With ``resume``, continue from ``out.partial``; ``on_epoch(network, epoch)`` is called
    after every completed epoch of a chunk (its first network's index).
    """
    out, settings = Path(out), config.pretrain
    checkpoint = PoolCheckpoint(out)
    if out.exists() and not resume:
        raise UserError(f"{out} already exists; choose another -o or delete it")
    if checkpoint.path.exists() and not resume:
        raise UserError(f"{checkpoint.path} holds an unfinished pool; pass --resume to continue it or delete it")
    check_writable(out.parent)
    dataset = source_dataset(config)
    module = build_model(config.model.name, dataset.input_shape, dataset.num_classes, **config.model.options)
    net = FunctionalNet.of(module)
    architecture = Architecture.of(config.model.name, config.model.options, dataset.input_shape, dataset.num_classes, net.num_params)
    meta = {
        "source": (settings.dataset or config.dataset).model_dump(mode="json"),
        "seed": config.seed,
        "seeds": [[config.seed, int(Stream.POOL), i] for i in range(settings.networks)],
        "init": {"scheme": config.init.scheme, "gain": config.init.gain},
        "pretrain": settings.model_dump(mode="json", exclude={"dataset"}),
        "last_batch": LAST_BATCH,
    }
    state = {"meta": meta, "architecture": architecture.as_dict(), "thetas": torch.zeros(0, net.num_params),
             "test_acc": torch.zeros(0), "chunk": None}
    if resume:
        if not checkpoint.path.exists():
            raise UserError(f"nothing to resume: no partial pool at {checkpoint.path}")
        state = checkpoint.load()
        if state.get("meta", {}).get("last_batch") != LAST_BATCH:
            raise UserError(f"{checkpoint.path} was started by an older distill whose passes dropped their last partial batch; "
                            "it cannot be continued exactly: delete it and start again")
        if state.get("meta") != meta or state.get("architecture") != architecture.as_dict():
            raise UserError(f"cannot resume {checkpoint.path} with a different config; use the config that started it")

    out.parent.mkdir(parents=True, exist_ok=True)
    x, y = dataset.train_x, dataset.train_y
    total = settings.networks * settings.epochs
    done = len(state["thetas"]) * settings.epochs + (state["chunk"]["epoch"] if state["chunk"] else 0)
    progress = tqdm(total=total, initial=done, desc="pretrain", unit="net-epoch", disable=not config.run.progress)
    try:
        while len(state["thetas"]) < settings.networks:
            first = len(state["thetas"])
            ids = range(first, min(first + settings.models_at_once, settings.networks))
            chunk = state["chunk"]
            if chunk is None:
                chunk = {"theta": torch.stack([init_weights(net, config.init.scheme, config.init.gain, generator(*meta["seeds"][i])) for i in ids]),
                         "optimizer": None, "epoch": 0}
            stack = nn.Parameter(chunk["theta"].clone())
            optimizer = make_optimizer(settings, stack)
            if chunk["optimizer"] is not None:
                optimizer.load_state_dict(chunk["optimizer"])
            for epoch in range(chunk["epoch"], settings.epochs):
                perms = torch.stack([torch.randperm(len(y), generator=generator(*meta["seeds"][i], epoch)) for i in ids])
                losses = train_epoch(net, stack, optimizer, x, y, perms, settings.batch_size)
                if not torch.isfinite(losses).all():
                    kept = (f"the last finished epoch is saved in {checkpoint.path}" if checkpoint.path.exists()
                            else "nothing was saved, as no epoch had finished")
                    raise DivergenceError(f"pretraining diverged (loss {losses.tolist()}) for networks {ids.start}-{ids.stop - 1} "
                                          f"in epoch {epoch + 1}; lower pretrain.lr ({kept})")
                state["chunk"] = {"theta": stack.detach().clone(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}
                checkpoint.save(state)
                progress.update(len(ids))
                progress.set_postfix(loss=f"{losses.mean():.4f}")
                if on_epoch is not None:
                    on_epoch(first, epoch + 1)
            trained = stack.detach()
            acc = accuracies(net, trained, dataset.test_x, dataset.test_y, config.eval.batch_size)
            state = {**state, "thetas": torch.cat([state["thetas"], trained]), "test_acc": torch.cat([state["test_acc"], acc]), "chunk": None}
            checkpoint.save(state)
    finally:
        progress.close()
    pool = Pool(state["thetas"], state["test_acc"], architecture, meta)
    pool.save(out)
    checkpoint.path.unlink()
    return pool
