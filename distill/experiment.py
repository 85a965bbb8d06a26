"""From a config to a finished run directory: dataset, model, initialisations, method,
evaluation and artefacts. The public entry points are ``run_experiment``,
``evaluate_run`` and ``summarize_run``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .config import Config, validate
from .datasets import ArrayDataset, load_dataset
from .distiller import RealData, distill
from .errors import UserError
from .evaluate import Evaluation, evaluate
from .functional import FunctionalNet
from .inits import InitSampler, generator, make_sampler
from .models import build_model
from .pool import Architecture, load_pool
from .rundir import RunDir
from .synthetic import DistilledData, initial_soft_labels, read_soft_labels, round_robin_labels
from .viz import save_grid, save_words

DATA_STREAM = 4


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
    gen = generator(setup.config.seed, DATA_STREAM)
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
    pool = pretrained_pool(setup) if init.pool is not None else None
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
    on_iteration: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run ``config`` into the run directory ``out`` and return its metrics.

    With ``resume``, continue from ``out/checkpoint.pt``; the run's own ``config.yaml``
    must then equal ``config``. ``method: continual`` runs go to ``continual.run_continual``.
    """
    if config.method == "continual":
        from .continual import run_continual

        return run_continual(config, out, resume=resume)
    run = RunDir(out)
    checkpoint, earlier_evaluations = None, []
    if resume:
        if validate(run.read_config()) != config:
            raise UserError(f"cannot resume {run.path} with a different config; omit CONFIG to use the run's own")
        checkpoint = run.load_checkpoint()
        if run.metrics.exists():
            earlier_evaluations = run.read_metrics().get("evaluations", [])
    elif run.checkpoint.exists():
        raise UserError(f"{run.path} already holds a run; pass --resume to continue it or choose another -o")
    run.create()
    run.write_config(config.model_dump(mode="json"))

    setup = build(config)
    sampler = sampler_of(setup, checkpoint["sampler"] if checkpoint else None)
    data = new_distilled_data(setup)
    distill(config, data, setup.net, sampler, setup.real, run, checkpoint=checkpoint, on_iteration=on_iteration)

    data = data.cpu()
    data.save(run.distilled)
    started = time.perf_counter()
    evaluation = evaluate_held_out(setup, data, sampler, config.eval.models)
    eval_seconds = time.perf_counter() - started
    last = run.read_log()[-1]
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
        "seconds": float(last["seconds"]),
        "eval_seconds": round(eval_seconds, 2),
        "iterations": int(last["iteration"]),
        "final_loss": float(last["loss"]),
        "lrs": [round(v, 6) for v in data.lrs().tolist()],
        "device": str(setup.device),
    }
    if config.init.pool is not None:
        metrics["pool"] = config.init.pool
    if earlier_evaluations:
        metrics["evaluations"] = earlier_evaluations
    run.write_metrics(metrics)
    return metrics


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
    metrics = run.read_metrics()
    setup = build(config)
    sampler = sampler_of(setup, run.load_checkpoint()["sampler"])
    models = models or config.eval.models
    evaluation = evaluate_held_out(setup, DistilledData.load(run.distilled), sampler, models)
    metrics.setdefault("evaluations", []).append(
        {"models": models, "test_acc": evaluation.test_acc.as_dict(), "before_acc": evaluation.before.as_dict()}
    )
    run.write_metrics(metrics)
    return evaluation


def summarize_run(out: str | Path) -> str:
    """A readable summary of a run directory: what was run, how it went, what it reached."""
    run = RunDir(out)
    config = validate(run.read_config())
    if config.method == "continual":
        from .continual.run import summarize_continual

        return summarize_continual(run, config)
    log = run.read_log()
    lines = [
        f"run        {run.path}",
        f"method     {config.method}: {config.dataset.name}, {config.model.name}, {config.init.kind} init",
        f"synthetic  {config.synthetic.n} samples, {config.synthetic.steps} steps x {config.synthetic.epochs} epochs",
        f"outer      {config.outer.epochs:g} epochs, batch {config.outer.batch_size}, Adam lr {config.outer.lr:g}, "
        f"K={config.outer.models_per_iteration}, back-gradient {config.outer.backgrad}",
    ]
    if log:
        last = log[-1]
        lines.append(f"progress   iteration {last['iteration']}, loss {float(last['loss']):.4f}, {float(last['seconds']):.0f} s")
    if run.metrics.exists():
        m = run.read_metrics()
        acc, before = m["test_acc"], m["before_acc"]
        lines.append(f"test acc   {100 * acc['mean']:.2f}% ± {100 * acc['std']:.2f} over {acc['n']} networks "
                     f"(before training: {100 * before['mean']:.2f}%)")
        lines.append(f"lrs        " + " ".join(f"{v:.4f}" for v in m["lrs"]))
        for e in m.get("evaluations", []):
            lines.append(f"eval       {e['models']} networks: {100 * e['test_acc']['mean']:.2f}% ± {100 * e['test_acc']['std']:.2f}")
    else:
        lines.append("status     unfinished (continue with: distill run -o DIR --resume)")
    return "\n".join(lines)
