"""A task's episodic memory: ``M`` real samples of it, or ``M`` samples distilled from it.

The distilled memory is learned with the library's own engine (``distiller.distill``)
from random initial weights, so that it is informative for whatever weights the learner
has when it later takes the memory's gradient (Wang et al., Sec. 3.6).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import torch
from torch import Tensor

from ..config import Config
from ..distiller import OuterSettings, RealData, distill
from ..functional import FunctionalNet
from ..inits import RandomInit
from ..rundir import RunDir
from ..synthetic import DistilledData


def real_memory(x: Tensor, y: Tensor, size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``size`` training samples of the task, drawn at random without replacement."""
    chosen = torch.randperm(len(y), generator=gen)[:size].to(y.device)
    return x[chosen], y[chosen]


def memory_settings(config: Config, seed: int) -> OuterSettings:
    """The outer loop that distills one task into its memory: ``continual.distill.outer``,
    checkpointed only at its end (the continual run checkpoints after every task)."""
    outer, memory = config.continual.distill.outer, config.continual.distill
    settings = OuterSettings.of(outer, seed=seed, log_every=10, checkpoint_every=None)
    what = {"settings": dataclasses.asdict(settings), "memory": memory.model_dump(mode="json", exclude={"outer"}),
            "memory_per_task": config.continual.memory_per_task, "model": config.model.model_dump(mode="json"),
            "init": config.init.model_dump(mode="json")}
    fingerprint = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
    return dataclasses.replace(settings, fingerprint=fingerprint)


def distilled_memory(
    config: Config, head: FunctionalNet, x: Tensor, y: Tensor, num_classes: int, run: RunDir, seed: int,
    resume: bool = False,
) -> tuple[tuple[Tensor, Tensor], DistilledData, float]:
    """Distill the task ``(x, y)`` (labels ``0 … num_classes−1``) into ``memory_per_task``
    samples; returns the memory ``(x̃, ỹ)``, the DistilledData and the distillation's seconds
    (summed over resumes). ``run`` gets the distillation's log and checkpoint; with
    ``resume``, a checkpoint there of the same settings is continued."""
    settings, memory = memory_settings(config, seed), config.continual.distill
    n = config.continual.memory_per_task
    gen = torch.Generator().manual_seed(seed)
    real = (x.cpu(), y.cpu()) if memory.data_init == "real" else None
    data = DistilledData.create(n, memory.steps, memory.epochs, tuple(x.shape[1:]), num_classes, memory.lr_init, real, gen).to(x.device)
    sampler = RandomInit(head, config.init.scheme, config.init.gain, seed)
    checkpoint = run.load_checkpoint() if resume and run.checkpoint.exists() else None
    if checkpoint is not None and checkpoint.get("config") != settings.fingerprint:
        checkpoint = None  # another memory's: distill this one afresh
    run.create()
    distill(settings, data, head, sampler, RealData(x, y, x, y), run, checkpoint=checkpoint)
    seconds = float(run.read_log()[-1]["seconds"])
    memory_x = (data.x.detach().reshape(n, *x.shape[1:]), data.labels.detach().reshape(n))
    return memory_x, data.cpu(), seconds
