"""A task's episodic memory: ``M`` real samples of it, or ``M`` samples distilled from it.

The distilled memory is learned with the library's own engine (``distiller.distill``)
from random initial weights, so that it is informative for whatever weights the learner
has when it later takes the memory's gradient (Wang et al., Sec. 3.6).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import Config, EvalConfig, RunConfig, SyntheticConfig, validate
from ..distiller import RealData, distill
from ..functional import FunctionalNet
from ..inits import RandomInit
from ..rundir import RunDir
from ..synthetic import DistilledData

NO_INTERMEDIATE_CHECKPOINTS = 10**9


def real_memory(x: Tensor, y: Tensor, size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``size`` training samples of the task, drawn at random without replacement."""
    chosen = torch.randperm(len(y), generator=gen)[:size].to(y.device)
    return x[chosen], y[chosen]


def memory_distill_config(config: Config, seed: int) -> Config:
    """The ``method: distill`` config that distills one task into its memory."""
    continual = config.continual
    settings = continual.distill
    synthetic = SyntheticConfig(
        n=continual.memory_per_task, steps=settings.steps, epochs=settings.epochs,
        lr_init=settings.lr_init, data_init=settings.data_init,
    )
    run = RunConfig(log_every=10, checkpoint_every=NO_INTERMEDIATE_CHECKPOINTS, device=config.run.device, progress=False)
    return config.model_copy(update={
        "method": "distill", "continual": None, "seed": seed, "synthetic": synthetic, "outer": settings.outer,
        "init": config.init.model_copy(update={"kind": "random"}), "eval": EvalConfig(every=0), "run": run,
    })


def distilled_memory(
    config: Config, head: FunctionalNet, x: Tensor, y: Tensor, num_classes: int, run: RunDir, seed: int,
    resume: bool = False,
) -> tuple[tuple[Tensor, Tensor], DistilledData, float]:
    """Distill the task ``(x, y)`` (labels ``0 … num_classes−1``) into ``memory_per_task``
    samples; returns the memory ``(x̃, ỹ)``, the DistilledData and the distillation's seconds
    (summed over resumes). ``run`` gets the distillation's config, log and checkpoint; with
    ``resume``, a checkpoint there of the same config is continued."""
    memory_config = memory_distill_config(config, seed)
    syn = memory_config.synthetic
    gen = torch.Generator().manual_seed(seed)
    real = (x.cpu(), y.cpu()) if syn.data_init == "real" else None
    data = DistilledData.create(syn.n, syn.steps, syn.epochs, tuple(x.shape[1:]), num_classes, syn.lr_init, real, gen).to(x.device)
    sampler = RandomInit(head, memory_config.init.scheme, memory_config.init.gain, seed)
    same_run = resume and run.checkpoint.exists() and run.config.exists() and validate(run.read_config()) == memory_config
    checkpoint = run.load_checkpoint() if same_run else None
    run.create()
    run.write_config(memory_config.model_dump(mode="json"))
    distill(memory_config, data, head, sampler, RealData(x, y, x, y), run, checkpoint=checkpoint)
    seconds = float(run.read_log()[-1]["seconds"])
    memory = (data.x.detach().reshape(syn.n, *x.shape[1:]), data.labels.detach().reshape(syn.n))
    return memory, data.cpu(), seconds
