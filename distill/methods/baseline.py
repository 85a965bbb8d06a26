"""The baselines of ``distill baseline`` (Wang et al. Sec. 4; ``method: random_real`` ...):
real training sets, k-means centroids and averages of the distilled size, and kNN, chosen
on held-out training samples and tested like distilled data, as a run directory."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from .. import baselines as B
from ..build import Setup, build
from ..config import Config
from ..errors import UserError
from ..evaluate import Accuracy
from ..inits import RandomInit
from ..rundir import RunDir
from ..seeds import Stream, generator
from .bilevel import save_pictures


def run(
    config: Config, run: RunDir, resume: bool = False, overwrite: bool = False, on_iteration: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the baseline ``config.method`` (``distill.baselines``) into the run directory ``out``.

    The training set is split once: ``baseline.search_samples`` (at most a fifth) held-out
    samples pick the grid cell (and, for ``optimized_real``, the best sets, and for ``knn``
    k and the distance); the baselines' samples are drawn from the rest. The winner is
    evaluated on the test set with ``eval.models`` random networks (``init.scheme``; also
    for fixed-init configs, as in the papers' baseline rows), network ``i`` trained on set
    ``i mod R``. A baseline does not resume (it runs in minutes); ``on_iteration`` is unused.
    """
    if resume:
        raise UserError(f"a {config.method} baseline has nothing to resume; run it again with --overwrite or into a new -o")
    started = time.perf_counter()
    setup = build(config)
    if config.baseline.distilled_run:
        learned_lrs(config.baseline.distilled_run, config.synthetic.steps)
    run.create(overwrite)
    run.write_config(config.model_dump(mode="json"))
    split = BaselineSplit.of(setup)
    metrics: dict[str, Any] = {"method": config.method, "dataset": setup.dataset.name, "model": config.model.name,
                               "init": "random", "n_distilled": config.synthetic.n}
    if config.method == "knn":
        metrics.update(knn_baseline(setup, split))
    else:
        metrics.update(training_baseline(setup, split, run))
    metrics.update(search_samples=len(split.val_y), seconds=round(time.perf_counter() - started, 2), device=str(setup.device))
    run.write_metrics(metrics)
    return metrics


@dataclass
class BaselineSplit:
    """The training set split for a baseline: a pool to draw sets from (CPU) and held-out
    samples that choose among the settings (on the run's device)."""

    pool_x: torch.Tensor
    pool_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    per_class: int
    gen: torch.Generator

    @classmethod
    def of(cls, setup: Setup) -> "BaselineSplit":
        config, ds = setup.config, setup.dataset
        gen = generator(config.seed, Stream.BASELINE)
        order = torch.randperm(len(ds.train_y), generator=gen)
        held = order[: min(config.baseline.search_samples, len(order) // 5)]
        rest = order[len(held):]
        device_held = held.to(setup.device)
        return cls(ds.train_x[rest], ds.train_y[rest], setup.real.train_x[device_held], setup.real.train_y[device_held],
                   B.per_class(config.synthetic.n, ds.num_classes), gen)

    def random_sets(self, count: int, num_classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [B.random_real(self.pool_x, self.pool_y, self.per_class, num_classes, self.gen) for _ in range(count)]

    def kmeans_sets(self, count: int, num_classes: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [B.kmeans_centroids(self.pool_x, self.pool_y, self.per_class, num_classes, seed + r) for r in range(count)]


def knn_baseline(setup: Setup, split: BaselineSplit) -> dict[str, Any]:
    """kNN with ``baseline.sets`` memories: k and the distance chosen on the held-out samples."""
    opts, ds = setup.config.baseline, setup.dataset
    if opts.memory == "random_real":
        sets = split.random_sets(opts.sets, ds.num_classes)
    else:
        sets = split.kmeans_sets(opts.sets, ds.num_classes, setup.config.seed)
    val = (split.val_x.cpu(), split.val_y.cpu())
    grid = [{"k": k, "distance": d, "val_acc": float(np.mean([B.knn_accuracy(*s, *val, k, d) for s in sets]))} for k, d in B.KNN_GRID]
    best = max(grid, key=lambda cell: cell["val_acc"])
    test = torch.tensor([B.knn_accuracy(*s, ds.test_x, ds.test_y, best["k"], best["distance"]) for s in sets])
    return {"init": None, "steps": None, "epochs": None, "memory": opts.memory, "k": best["k"], "distance": best["distance"],
            "test_acc": Accuracy.of(test).as_dict(), "sets": len(sets), "grid": grid}


def training_baseline(setup: Setup, split: BaselineSplit, run: RunDir) -> dict[str, Any]:
    """A real training set: the grid cell chosen with search networks on the held-out samples,
    then ``eval.models`` held-out networks trained with it and tested."""
    config, ds, net = setup.config, setup.dataset, setup.net
    opts, steps, batch, method = config.baseline, config.synthetic.steps, config.eval.batch_size, config.method
    sampler = RandomInit(net, config.init.scheme, config.init.gain, config.seed)
    search = sampler.sample(opts.search_models, 0).to(setup.device)
    if method in ("random_real", "optimized_real"):
        sets = split.random_sets(opts.sets if method == "random_real" else opts.candidates, ds.num_classes)
    elif method == "kmeans":
        sets = split.kmeans_sets(opts.sets, ds.num_classes, config.seed)
    else:
        sets = [B.average_real(split.pool_x, split.pool_y, split.per_class, ds.num_classes)]
    learned = learned_lrs(opts.distilled_run, steps) if opts.distilled_run else None
    epoch_grid = sorted(set(opts.epochs) | {config.synthetic.epochs})
    cells = B.schedules(steps, opts.lrs, epoch_grid, learned)
    cell, grid = B.grid_search(net, sets, steps, cells, ds.num_classes, search, split.val_x, split.val_y, batch)
    edge = B.grid_edge(cell, opts.lrs, epoch_grid)
    if method == "optimized_real":
        scores = [B.pooled_accuracies(net, [s], steps, cell.lrs, ds.num_classes, search, split.val_x, split.val_y, batch).mean().item()
                  for s in sets]
        sets = B.best_sets(sets, scores, opts.keep)
    started = time.perf_counter()
    thetas = sampler.held_out(config.eval.models).to(setup.device)
    test = B.pooled_accuracies(net, sets, steps, cell.lrs, ds.num_classes, thetas, setup.real.test_x, setup.real.test_y, batch)
    eval_seconds = round(time.perf_counter() - started, 2)
    data = B.training_data(*sets[0], steps, cell.lrs, ds.num_classes)
    data.save(run.distilled)
    save_pictures(run, data, ds)
    return {"steps": steps, "epochs": cell.epochs, "lr": cell.describe()["lr"], "test_acc": Accuracy.of(test).as_dict(),
            "sets": len(sets), "search_models": opts.search_models, "eval_seconds": eval_seconds, "grid": grid,
            "lrs": [round(v, 6) for v in data.lrs().tolist()], **({"grid_edge": edge} if edge else {})}


def learned_lrs(run_dir: str, steps: int) -> torch.Tensor:
    """The learned step sizes ``η`` (``lrs`` of its metrics.json) of the finished distillation
    run in ``run_dir``, for the baselines' grid."""
    if not RunDir(run_dir).config.is_file():
        raise UserError(f"baseline.distilled_run {run_dir} is not a run directory (it has no config.yaml)")
    lrs = RunDir(run_dir).read_metrics(("lrs",))["lrs"]
    if not isinstance(lrs, list) or not lrs or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in lrs):
        raise UserError(f"baseline.distilled_run {run_dir}: its metrics.json holds no positive learning rates under lrs")
    lrs = torch.tensor(lrs, dtype=torch.float32)
    if len(lrs) % steps:
        raise UserError(f"baseline.distilled_run {run_dir} has {len(lrs)} learning rates, not a whole number of epochs of {steps} steps")
    return lrs
