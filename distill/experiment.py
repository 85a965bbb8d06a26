"""From a config to a finished run directory: dataset, model, initialisations, method,
evaluation and artefacts. The public entry points are ``run_experiment``,
``evaluate_run`` and ``summarize_run``."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import baselines as B
from .config import Config, validate
from .datasets import ArrayDataset, load_dataset
from .distiller import OuterSettings, RealData, distill
from .errors import DivergenceError, UserError
from .evaluate import Accuracy, Evaluation, accuracies, evaluate
from .fulltrain import train_full
from .functional import FunctionalNet
from .inits import FixedInit, InitSampler, RandomInit, make_sampler
from .models import build_model
from .pool import Architecture, load_pool
from .files import check_writable, load_tensors, save_tensors, write_json
from .rundir import RunDir
from .seeds import Stream, generator
from .synthetic import DistilledData, initial_soft_labels, read_soft_labels, round_robin_labels
from .viz import save_grid, save_words

INIT_FORMAT = "distill-init"


@dataclass
class Setup:
    """Everything a run needs, built from its config."""

    config: Config
    device: torch.device
    dataset: ArrayDataset
    net: FunctionalNet
    real: RealData


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def build(config: Config) -> Setup:
    """Load the dataset, check the config against it, and build the model."""
    device = resolve_device(config.run.device)
    dataset = load_dataset(config.dataset.name, root=config.dataset.root, download=config.dataset.download, **config.dataset.options)
    if config.synthetic.labels == "hard" and config.synthetic.n < dataset.num_classes:
        raise UserError(
            f"synthetic.n = {config.synthetic.n} is fewer than the {dataset.num_classes} classes of "
            f"{dataset.name}: hard labels need at least one sample per class (learned labels do not: "
            f"synthetic.labels: learned)"
        )
    module = build_model(config.model.name, dataset.input_shape, dataset.num_classes, **config.model.options).to(device)
    real = RealData(*(t.to(device) for t in (dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y)))
    return Setup(config, device, dataset, FunctionalNet.of(module), real)


def new_distilled_data(setup: Setup) -> DistilledData:
    syn, ds = setup.config.synthetic, setup.dataset
    real = (ds.train_x, ds.train_y) if syn.data_init == "real" else None
    gen = generator(setup.config.seed, Stream.DATA)
    soft = None
    if syn.labels == "learned":
        if syn.label_init == "file":
            soft = read_soft_labels(syn.label_file, syn.n, ds.num_classes)
        else:
            classes = round_robin_labels(syn.n, ds.num_classes)
            soft = initial_soft_labels(classes, ds.num_classes, syn.label_init, syn.label_smoothing, gen, syn.label_softmax)
    data = DistilledData.create(
        syn.n, syn.steps, syn.epochs, ds.input_shape, ds.num_classes, syn.lr_init, real, gen, soft, syn.label_softmax
    )
    return data.to(setup.device)


def sampler_of(setup: Setup, state: dict | None = None) -> InitSampler:
    init = setup.config.init
    restored = state is not None and "theta" in state  # a fixed network needs no pool once it is saved
    pool = pretrained_pool(setup) if init.pool is not None and not restored else None
    return make_sampler(init.kind, setup.net, init.scheme, init.gain, setup.config.seed, state,
                        pool=pool, train_networks=init.train_networks, network=init.network)


def pretrained_pool(setup: Setup) -> torch.Tensor:
    """The weights of ``init.pool``, checked against this run's model, input shape and classes
    and against the split the config asks for."""
    config, ds = setup.config, setup.dataset
    pool = load_pool(config.init.pool)
    pool.check(Architecture.of(config.model.name, config.model.options, ds.input_shape, ds.num_classes, setup.net.num_params), config.init.pool)
    n, init = len(pool.thetas), config.init
    if init.kind == "pretrained_fixed" and init.network >= n:
        raise UserError(f"init.network = {init.network}, but the pool {init.pool} holds {n} networks (0 to {n - 1})")
    if init.kind == "pretrained_random":
        if init.train_networks >= n:
            raise UserError(f"init.train_networks = {init.train_networks} leaves no held-out network in the pool {init.pool} "
                            f"of {n}; use fewer (the rest are held out for evaluation)")
        if config.outer.models_per_iteration > init.train_networks:
            raise UserError(f"outer.models_per_iteration = {config.outer.models_per_iteration} is more than the "
                            f"{init.train_networks} training networks of the pool")
    return pool.thetas


def run_experiment(
    config: Config,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    on_iteration: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run ``config`` into the run directory ``out`` and return its metrics.

    A directory that already holds a run is refused unless ``resume`` (continue from its
    ``checkpoint.pt``; its own ``config.yaml`` must equal ``config``) or ``overwrite``
    (replace its run files once the new run's set-up has succeeded). Baselines go to
    ``run_baseline``, ``method: continual`` runs to ``continual.run_continual``.
    """
    run = RunDir(out)
    run.claim(resume, overwrite, resumable=config.method not in B.BASELINES)
    if resume and validate(run.read_config()) != config:
        raise UserError(f"cannot resume {run.path} with a different config; omit CONFIG to use the run's own")
    if config.method == "continual":
        from .continual import run_continual

        return run_continual(config, out, resume=resume, overwrite=overwrite)
    if config.method in B.BASELINES:
        if resume:
            raise UserError(f"a {config.method} baseline has nothing to resume; run it again with --overwrite or into a new -o")
        return run_baseline(config, out, overwrite=overwrite)
    checkpoint = run.load_checkpoint() if resume else None
    earlier_evaluations = earlier_evaluations_of(run) if resume else []

    setup = build(config)
    sampler = sampler_of(setup, checkpoint["sampler"] if checkpoint else None)
    data = new_distilled_data(setup)
    run.create(overwrite)
    if not resume:
        run.write_config(config.model_dump(mode="json"))
    distill(outer_settings(config), data, setup.net, sampler, setup.real, run, checkpoint=checkpoint, on_iteration=on_iteration)

    data = data.cpu()
    data.save(run.distilled)
    save_init(run, config, setup, sampler)
    started = time.perf_counter()
    evaluation = evaluate_held_out(setup, data, sampler, config.eval.models)
    eval_seconds = time.perf_counter() - started
    last = last_progress(run)
    save_pictures(run, data, setup.dataset)
    if data.learns_labels:
        run.write_labels(data.labels.detach(), setup.dataset.class_names)
    metrics = {
        "method": config.method,
        "dataset": config.dataset.name,
        "model": config.model.name,
        "init": config.init.kind,
        "n_distilled": data.n,
        "steps": data.steps,
        "epochs": data.epochs,
        "test_acc": evaluation.test_acc.as_dict(),
        "before_acc": evaluation.before.as_dict(),
        "seconds": last["seconds"],
        "eval_seconds": round(eval_seconds, 2),
        "iterations": last["iteration"],
        "final_loss": last["loss"],
        "lrs": [round(v, 6) for v in data.lrs().tolist()],
        "device": str(setup.device),
    }
    if config.eval.select == "best_train" and any(r.get("select_acc") for r in run.read_log()):
        metrics["selected"] = selected_evaluation(run.read_log())
    if config.init.pool is not None:
        metrics["pool"] = config.init.pool
    if earlier_evaluations:
        metrics["evaluations"] = earlier_evaluations
    run.write_metrics(metrics)
    return metrics


def last_progress(run: RunDir) -> dict[str, Any]:
    """Iteration, seconds and loss of a finished distillation: its last log row, or, when its
    log.csv has lost its rows, the checkpoint's iteration and seconds (loss unknown: None)."""
    rows = run.read_log()
    if rows:
        return {"iteration": int(rows[-1]["iteration"]), "seconds": float(rows[-1]["seconds"]), "loss": float(rows[-1]["loss"])}
    state = run.load_checkpoint()
    return {"iteration": int(state["iteration"]), "seconds": float(state["seconds"]), "loss": None}


def outer_settings(config: Config) -> OuterSettings:
    """The outer loop's settings of a ``method: distill`` config."""
    outer, ev, run = config.outer, config.eval, config.run
    return OuterSettings(
        epochs=outer.epochs, batch_size=outer.batch_size, lr=outer.lr, label_lr=outer.label_lr, betas=outer.betas,
        decay_epochs=outer.decay_epochs, decay_factor=outer.decay_factor, models_per_iteration=outer.models_per_iteration,
        backgrad=outer.backgrad, clip_grad_norm=outer.clip_grad_norm, learn_data=not config.synthetic.freeze_data,
        seed=config.seed, eval_every=ev.every, models_during=ev.models_during, eval_batch_size=ev.batch_size,
        select=ev.select, select_samples=ev.select_samples, log_every=run.log_every,
        checkpoint_every=run.checkpoint_every, progress=run.progress, fingerprint=config.fingerprint(),
    )


def earlier_evaluations_of(run: RunDir) -> list:
    """The ``evaluations`` a resumed run's metrics.json recorded (none when it has no
    readable one: the resume writes it afresh)."""
    try:
        evaluations = run.read_metrics().get("evaluations", []) if run.metrics.exists() else []
    except UserError:
        return []
    return evaluations if isinstance(evaluations, list) else []


def save_init(run: RunDir, config: Config, setup: Setup, sampler: InitSampler) -> None:
    """``init.pt`` for fixed and pretrained-fixed runs: the one initial weight vector the data
    was learned for, with the model it belongs to, so that the run directory alone (without
    its checkpoint or pool) can evaluate and use the data."""
    if isinstance(sampler, FixedInit):
        save_tensors(run.init, {"format": INIT_FORMAT, "kind": config.init.kind, "theta": sampler.theta.cpu(),
                                "model": {"name": config.model.name, "options": config.model.options},
                                "num_params": setup.net.num_params})


def saved_sampler_state(run: RunDir, config: Config, setup: Setup) -> dict | None:
    """The fixed initial weights a finished run was learned for: from ``init.pt``, else from
    its checkpoint; None when it has neither (a ``fixed`` run then draws the same weights
    again from its seed, as it did when it started)."""
    if run.init.exists():
        state = load_tensors(run.init, "the initial weights")
        theta = state.get("theta") if isinstance(state, dict) else None
        if state.get("format") != INIT_FORMAT or not torch.is_tensor(theta) or theta.shape != (setup.net.num_params,):
            raise UserError(f"{run.init} does not hold the {setup.net.num_params} initial weights of this run's "
                            f"{config.model.name}; delete it to use the checkpoint's")
        if not torch.isfinite(theta).all():
            raise UserError(f"the initial weights {run.init} hold non-finite values")
        return {"theta": theta}
    if run.checkpoint.exists():
        return run.load_checkpoint()["sampler"]
    return None


def save_pictures(run: RunDir, data: DistilledData, dataset: ArrayDataset) -> None:
    """``words.txt`` for embedded text, ``grid.png`` for images."""
    labels, lrs = data.targets().detach(), data.lrs().detach()
    if dataset.embeddings is not None:
        save_words(run.words, data.x, labels, lrs, dataset.embeddings, dataset.vocab, dataset.class_names)
    else:
        save_grid(run.grid, data.x, labels, lrs, dataset.mean, dataset.std, dataset.class_names)


def evaluate_held_out(setup: Setup, data: DistilledData, sampler: InitSampler, models: int) -> Evaluation:
    """Train ``models`` held-out networks (the one fixed network for fixed init) on ``data``."""
    thetas = sampler.held_out(models).to(setup.device)
    return evaluate(setup.net, data, thetas, setup.real.test_x, setup.real.test_y, setup.config.eval.batch_size)


def evaluate_run(out: str | Path, models: int | None = None) -> Evaluation:
    """Re-evaluate a finished run with ``models`` held-out networks; record it in metrics.json."""
    run = RunDir(out)
    config = validate(run.read_config())
    if config.method == "continual":
        raise UserError(f"{run.path} is a continual run: it has no distilled data to evaluate; see its continual.json")
    if config.method in B.BASELINES:
        raise UserError(f"{run.path} is a {config.method} baseline; evaluate its training set with --model NAME "
                        f"(e.g. --model {config.model.name})")
    metrics = run.read_metrics()
    check_recordable(run, metrics)
    setup = build(config)
    data = load_distilled(run, setup)
    sampler = sampler_of(setup, saved_sampler_state(run, config, setup))
    models = models or config.eval.models
    evaluation = evaluate_held_out(setup, data, sampler, models)
    record_evaluation(run, metrics, {"models": models}, evaluation)
    return evaluation


def load_distilled(run: RunDir, setup: Setup) -> DistilledData:
    """The run's ``distilled.pt``, checked against the dataset and model it is used with."""
    data = DistilledData.load(run.distilled)
    data.check_fits(setup.dataset.input_shape, setup.dataset.num_classes, run.distilled)
    return data


def check_recordable(run: RunDir, metrics: dict[str, Any]) -> None:
    """Before an evaluation's work: its result can be added to ``metrics.json``."""
    if not os.access(run.metrics, os.W_OK) or not os.access(run.path, os.W_OK | os.X_OK):
        raise UserError(f"cannot record an evaluation in {run.metrics}: permission denied (make the run directory writable)")
    if not isinstance(metrics.get("evaluations", []), list):
        raise UserError(f"{run.metrics} is corrupt: its evaluations are not a list")


def record_evaluation(run: RunDir, metrics: dict[str, Any], entry: dict[str, Any], evaluation: Evaluation) -> None:
    """Append an evaluation to ``metrics.json``; if that write fails, the error names the
    path and still gives the result, so that the work is not lost."""
    metrics.setdefault("evaluations", []).append({**entry, "test_acc": evaluation.test_acc.as_dict(), "before_acc": evaluation.before.as_dict()})
    try:
        run.write_metrics(metrics)
    except OSError as error:
        raise UserError(f"the evaluation (after training: {evaluation.test_acc}) could not be recorded in "
                        f"{run.metrics}: {error.strerror}") from None


def selected_evaluation(log: list[dict[str, str]]) -> dict[str, float | int]:
    """The periodic evaluation ``eval.select: best_train`` kept: the first with the highest
    training-sample accuracy, with the test accuracy logged there."""
    rows = [r for r in log if r.get("select_acc")]
    best = max(rows, key=lambda r: float(r["select_acc"]))
    return {"iteration": int(best["iteration"]), "select_acc": float(best["select_acc"]), "test_acc": float(best["test_acc"])}


def summarize_run(out: str | Path) -> str:
    """A readable summary of a run directory: what was run, how it went, what it reached."""
    run = RunDir(out)
    try:
        return _summary(run)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise UserError(f"{run.metrics} is corrupt or was written by another program ({type(error).__name__}: {error})") from None


def _summary(run: RunDir) -> str:
    config = validate(run.read_config())
    if config.method == "continual":
        from .continual.run import summarize_continual

        return summarize_continual(run, config)
    if config.method in B.BASELINES:
        return summarize_baseline(run, config)
    log = run.read_log()
    lines = [
        f"run        {run.path}",
        f"method     {config.method}: {config.dataset.name}, {config.model.name}, {config.init.kind} init",
        f"synthetic  {config.synthetic.n} samples, {config.synthetic.steps} steps x {config.synthetic.epochs} epochs",
        f"outer      {config.outer.epochs:g} epochs, batch {config.outer.batch_size}, Adam lr {config.outer.lr:g}, "
        f"K={config.outer.models_per_iteration}, back-gradient {config.outer.backgrad}"
        + ("" if config.outer.clip_grad_norm is None else f" clipped to norm {config.outer.clip_grad_norm:g}"),
    ]
    if log:
        last = log[-1]
        lines.append(f"progress   iteration {last['iteration']}, loss {float(last['loss']):.4f}, {float(last['seconds']):.0f} s")
    if run.metrics.exists():
        m = run.read_metrics(("test_acc", "before_acc", "iterations", "lrs"))
        acc, before = m["test_acc"], m["before_acc"]
        lines.append(f"test acc   {100 * acc['mean']:.2f}% ± {100 * acc['std']:.2f} over {acc['n']} networks "
                     f"(before training: {100 * before['mean']:.2f}%)")
        if "selected" in m:
            sel = m["selected"]
            lines.append(f"selected   the data of iteration {sel['iteration']} of {m['iterations']} "
                         f"(best accuracy on training samples: {100 * sel['select_acc']:.2f}%)")
        lines.append(f"lrs        " + " ".join(f"{v:.4f}" for v in m["lrs"]))
        for e in m.get("evaluations", []):
            lines.append(f"eval       {e['models']} networks: {100 * e['test_acc']['mean']:.2f}% ± {100 * e['test_acc']['std']:.2f}")
    else:
        resumes_from = run.checkpointed_iteration()
        lines.append("status     unfinished; " + ("it has no readable checkpoint" if resumes_from is None else
                     f"--resume restarts from iteration {resumes_from}") + f" (distill run -o {run.path} --resume)")
    return "\n".join(lines)


def run_baseline(config: Config, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Run the baseline ``config.method`` (``distill.baselines``) into the run directory ``out``.

    The training set is split once: ``baseline.search_samples`` (at most a fifth) held-out
    samples pick the grid cell (and, for ``optimized_real``, the best sets, and for ``knn``
    k and the distance); the baselines' samples are drawn from the rest. The winner is
    evaluated on the test set with ``eval.models`` random networks (``init.scheme``; also
    for fixed-init configs, as in the papers' baseline rows), network ``i`` trained on set
    ``i mod R``.
    """
    run = RunDir(out)
    run.claim(overwrite=overwrite, resumable=False)
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


DIVERGED_LOSS = 10  # full-data training whose last pass's loss exceeds 10 log C has diverged


def full_data_key(config: Config) -> str:
    """The cache key of a full-data result: ``dataset/model/seed``."""
    return f"{config.dataset.name}/{config.model.name}/{config.seed}"


def read_full_data_cache(path: str | Path) -> dict[str, Any]:
    """The full-data results file of ``distill train`` (``{}`` when it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    if not path.is_file():
        raise UserError(f"train.cache {path} is not a file; point it at a JSON file (default: runs/full_data.json)")
    try:
        cache = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"the full-data cache {path} is corrupt ({error}); delete it to start afresh") from None
    if not isinstance(cache, dict) or not all(isinstance(v, dict) for v in cache.values()):
        raise UserError(f"the full-data cache {path} is corrupt (not a mapping of results); delete it to start afresh")
    return cache


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


def evaluate_transfer(out: str | Path, model: str, lr: float | str | None = None, models: int | None = None) -> tuple[Evaluation, Any]:
    """Train ``models`` random networks of architecture ``model`` on a run's distilled data
    (cross-architecture evaluation) and record it in metrics.json under ``evaluations``.

    ``lr``: None keeps the learned step sizes; a number trains every step with it; ``"tune"``
    picks the best constant rate of ``baseline.lrs`` with ``baseline.search_models`` networks
    on ``baseline.search_samples`` training samples. Returns the evaluation and the rate used."""
    run = RunDir(out)
    raw = run.read_config()
    raw["model"] = {"name": model}
    config = validate(raw)
    metrics = run.read_metrics()
    check_recordable(run, metrics)
    setup = build(config)
    data = load_distilled(run, setup)
    sampler = RandomInit(setup.net, config.init.scheme, config.init.gain, config.seed)
    if lr == "tune":
        gen = generator(config.seed, Stream.TRANSFER)
        held = torch.randperm(len(setup.real.train_y), generator=gen)[: config.baseline.search_samples].to(setup.device)
        search = sampler.sample(config.baseline.search_models, 0).to(setup.device)
        scores = {}
        for rate in config.baseline.lrs:
            candidate = B.with_lrs(data, torch.full((len(data.raw_lrs),), rate))
            scores[rate] = evaluate(setup.net, candidate, search, setup.real.train_x[held], setup.real.train_y[held],
                                    config.eval.batch_size).test_acc.mean
        lr = max(scores, key=scores.get)
    if lr is not None:
        data = B.with_lrs(data, torch.full((len(data.raw_lrs),), float(lr)))
    models = models or config.eval.models
    thetas = sampler.held_out(models).to(setup.device)
    evaluation = evaluate(setup.net, data, thetas, setup.real.test_x, setup.real.test_y, config.eval.batch_size)
    record_evaluation(run, metrics, {"models": models, "model": model, "lr": "learned" if lr is None else lr}, evaluation)
    return evaluation, lr


def summarize_for_comparison(out: str | Path, cache: str | Path | None = None) -> "RunSummary":
    """A finished run directory as a ``compare.RunSummary``, with its full-data accuracy
    when ``cache`` (default: the config's ``train.cache``) holds it. Distillation with learned
    labels counts as its own method, so that a sweep does not mix hard and soft labels."""
    from .compare import RunSummary

    run = RunDir(out)
    config = validate(run.read_config())
    if config.method == "continual":
        raise UserError(f"{run.path} is a continual run: it has no distilled training set to compare (see distill show {run.path})")
    m = run.read_metrics(("method", "dataset", "model", "n_distilled", "test_acc"))
    cache_path = cache or config.train.cache
    full = read_full_data_cache(cache_path).get(full_data_key(config), {})
    if full and not (_is_number(full.get("test_acc")) and 0 < full["test_acc"] <= 1 and isinstance(full.get("train_size"), int)
                     and full["train_size"] > 0):
        raise UserError(f"the full-data cache {cache_path} is corrupt at {full_data_key(config)} (test_acc must lie in (0, 1], "
                        f"train_size be a positive count); delete that entry to train it again")
    method = m["method"] + (" (learned labels)" if m["method"] == "distill" and config.synthetic.labels == "learned" else "")
    try:
        acc = m["test_acc"]
        return RunSummary(str(out), method, m["dataset"], m["model"], int(m["n_distilled"]), float(acc["mean"]),
                          float(acc["std"]), int(acc["n"]), full.get("test_acc"), full.get("train_size"))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{run.metrics} is corrupt or was written by another program ({type(error).__name__}: {error})") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summarize_baseline(run: RunDir, config: Config) -> str:
    """``distill show`` for a baseline's run directory."""
    if not run.metrics.exists():
        return "\n".join([f"run        {run.path}", f"method     {config.method} baseline: {config.dataset.name}, {config.model.name}",
                          f"status     unfinished: it stopped before writing metrics.json; a baseline does not resume, so run it "
                          f"again: distill run {run.config} -o {run.path} --overwrite"])
    m = run.read_metrics(("method", "dataset", "model", "n_distilled", "test_acc", "search_samples", "seconds"))
    acc = m["test_acc"]
    setting = (f"memory {m['memory']}, k={m['k']}, {m['distance']} distance, {m['sets']} sets" if m["method"] == "knn"
               else f"lr {m['lr']}, {m['epochs']} epochs of {m['steps']} steps, {m['sets']} sets")
    return "\n".join([
        f"run        {run.path}",
        f"method     {m['method']} baseline: {m['dataset']}, {m['model']}, {m['n_distilled']} samples",
        f"chosen     {setting} (on {m['search_samples']} held-out training samples)",
        f"test acc   {100 * acc['mean']:.2f}% ± {100 * acc['std']:.2f} over {acc['n']} {'sets' if m['method'] == 'knn' else 'networks'}",
        f"time       {m['seconds']:.0f} s",
        *([f"note       {m['grid_edge']}"] if m.get("grid_edge") else []),
    ])
