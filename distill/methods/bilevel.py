"""``method: distill``: the bilevel method of Wang et al. (with soft labels and text) as a
run directory: set-up, the outer loop, the held-out evaluation, pictures and metrics; and
the re-evaluation of a finished run, on its own architecture or on another (transfer)."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import torch

from .. import baselines as B
from ..build import Setup, build, new_distilled_data, sampler_of
from ..config import Config, validate
from ..datasets import ArrayDataset
from ..distiller import OuterSettings, distill
from ..distributed import SOLO, Group
from ..errors import UserError
from ..evaluate import Accuracy, Evaluation, evaluate as train_and_test, test_accuracies
from ..files import load_tensors, save_tensors
from ..inits import FixedInit, InitSampler, RandomInit
from ..rundir import RunDir
from ..seeds import Stream, generator
from ..synthetic import DistilledData
from ..viz import save_grid, save_words

INIT_FORMAT = "distill-init"


def run(
    config: Config,
    run: RunDir,
    resume: bool = False,
    overwrite: bool = False,
    on_iteration: Callable[[int], None] | None = None,
    group: Group = SOLO,
) -> dict[str, Any]:
    """Distill as ``config`` says into ``run`` (``run_experiment`` has checked that the
    directory may be written, and that a resumed run's config is this one); returns the
    metrics written to ``metrics.json``. In a distributed run (``group``) every rank runs
    this, rank 0 alone writes (the others get a ``FollowerRun``), and the final held-out
    networks are split among the ranks."""
    checkpoint = run.load_checkpoint() if resume else None
    earlier_evaluations = earlier_evaluations_of(run) if resume else []

    setup = build(config)
    sampler = sampler_of(setup, checkpoint["sampler"] if checkpoint else None)
    data = new_distilled_data(setup)
    run.create(overwrite)
    if not resume:
        run.write_config(config.model_dump(mode="json"))
    distill(outer_settings(config), data, setup.net, sampler, setup.real, run, checkpoint=checkpoint, on_iteration=on_iteration,
            group=group)

    data = data.cpu()
    if group.main:
        data.save(run.distilled)
        save_init(run, config, setup, sampler)
    started = time.perf_counter()
    evaluation = evaluate_held_out(setup, data, sampler, config.eval.models, group)
    eval_seconds = time.perf_counter() - started
    if not group.main:
        return {"method": config.method, "test_acc": evaluation.test_acc.as_dict()}
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
        "processes": group.size,
    }
    log = run.read_log()
    if config.eval.select == "best_train" and any(r.get("select_acc") for r in log):
        metrics["selected"] = selected_evaluation(log)
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
    ev, run = config.eval, config.run
    return OuterSettings.of(
        config.outer, learn_data=not config.synthetic.freeze_data, seed=config.seed, eval_every=ev.every,
        models_during=ev.models_during, eval_batch_size=ev.batch_size, select=ev.select, select_samples=ev.select_samples,
        log_every=run.log_every, checkpoint_every=run.checkpoint_every, progress=run.progress, fingerprint=config.fingerprint(),
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
        return {"theta": read_init(run, config, setup.net.num_params)}
    if run.checkpoint.exists():
        return run.load_checkpoint()["sampler"]
    return None


def read_init(run: RunDir, config: Config, num_params: int) -> torch.Tensor:
    """The initial weights ``θ₀`` ([num_params]) in the run's ``init.pt``, checked to be
    ``num_params`` finite numbers of the config's model."""
    state = load_tensors(run.init, "the initial weights")
    theta = state.get("theta") if isinstance(state, dict) else None
    if not isinstance(state, dict) or state.get("format") != INIT_FORMAT or not torch.is_tensor(theta) or theta.shape != (num_params,):
        raise UserError(f"{run.init} does not hold the {num_params} initial weights of this run's "
                        f"{config.model.name}; delete it to use the checkpoint's")
    if not torch.isfinite(theta).all():
        raise UserError(f"the initial weights {run.init} hold non-finite values")
    return theta


def save_pictures(run: RunDir, data: DistilledData, dataset: ArrayDataset) -> None:
    """``words.txt`` for embedded text, ``grid.png`` for images."""
    labels, lrs = data.targets().detach(), data.lrs().detach()
    if dataset.embeddings is not None:
        save_words(run.words, data.x, labels, lrs, dataset.embeddings, dataset.vocab, dataset.class_names)
    else:
        save_grid(run.grid, data.x, labels, lrs, dataset.mean, dataset.std, dataset.class_names)


def evaluate_held_out(setup: Setup, data: DistilledData, sampler: InitSampler, models: int, group: Group = SOLO) -> Evaluation:
    """Train ``models`` held-out networks (the one fixed network for fixed init) on ``data``;
    each rank of ``group`` trains its share of them."""
    thetas = sampler.held_out(models)
    before, after = test_accuracies(setup.net, data, thetas[group.share(len(thetas))].to(setup.device), setup.real.test_x,
                                    setup.real.test_y, setup.config.eval.batch_size)
    return Evaluation(test_acc=Accuracy.of(group.gather(after)), before=Accuracy.of(group.gather(before)))


def evaluate(run: RunDir, config: Config, models: int | None = None) -> Evaluation:
    """Re-evaluate the finished run ``run`` of ``config`` with ``models`` held-out networks
    (default ``eval.models``; fixed init: its one network); record it in metrics.json."""
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


def evaluate_transfer(run: RunDir, model: str, lr: float | str | None = None, models: int | None = None) -> tuple[Evaluation, Any]:
    """Train ``models`` random networks of architecture ``model`` on a run's distilled data
    (cross-architecture evaluation) and record it in metrics.json under ``evaluations``.

    ``lr``: None keeps the learned step sizes; a number trains every step with it; ``"tune"``
    picks the best constant rate of ``baseline.lrs`` with ``baseline.search_models`` networks
    on ``baseline.search_samples`` training samples. Returns the evaluation and the rate used.
    Works for every run directory that holds a ``distilled.pt`` (distillation and baselines)."""
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
            scores[rate] = train_and_test(setup.net, candidate, search, setup.real.train_x[held], setup.real.train_y[held],
                                    config.eval.batch_size).test_acc.mean
        lr = max(scores, key=scores.get)
    if lr is not None:
        data = B.with_lrs(data, torch.full((len(data.raw_lrs),), float(lr)))
    models = models or config.eval.models
    thetas = sampler.held_out(models).to(setup.device)
    evaluation = train_and_test(setup.net, data, thetas, setup.real.test_x, setup.real.test_y, config.eval.batch_size)
    record_evaluation(run, metrics, {"models": models, "model": model, "lr": "learned" if lr is None else lr}, evaluation)
    return evaluation, lr
