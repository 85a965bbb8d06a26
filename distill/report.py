"""What ``distill show`` and ``distill compare`` print: a run directory's summary for each
method, and several runs side by side (a markdown table, the distillation ratio, the "%
distillation size" of a sweep, the plot of accuracy against the number of samples).
Reads files only: no torch, and matplotlib only to draw the plot.

Sucholutsky & Schonlau's relative metrics: the distillation ratio ``ρ = acc(distilled) /
acc(full data)`` and, for a sweep over ``n``, the distillation size
``min{n : ρ(n) ≥ target} / N_train`` in percent.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, validate
from .curves import plot_overlay
from .errors import UserError
from .files import atomic_write
from .rundir import RunDir


@dataclass(frozen=True)
class RunSummary:
    """What a comparison needs of one run directory."""

    path: str
    method: str
    dataset: str
    model: str
    n: int
    acc: float
    std: float
    networks: int
    full_acc: float | None = None  # the same model on the whole training set
    train_size: int | None = None

    @property
    def group(self) -> tuple[str, str, str]:
        return self.method, self.dataset, self.model

    @property
    def ratio(self) -> float | None:
        return None if self.full_acc is None else self.acc / self.full_acc


def distillation_size(runs: list[RunSummary], target: float) -> float | None:
    """``100 · min{n : ρ(n) ≥ target} / N_train`` over the runs of one sweep; None when no run reaches it."""
    reached = [r for r in runs if r.ratio is not None and r.ratio >= target and r.train_size]
    if not reached:
        return None
    best = min(reached, key=lambda r: r.n)
    return 100 * best.n / best.train_size


def markdown_table(runs: list[RunSummary]) -> str:
    """One row per run: method, dataset, model, n, test accuracy (mean ± std over networks), ratio."""
    lines = ["| run | method | dataset | model | n | test acc (%) | networks | ratio |",
             "| --- | --- | --- | --- | --: | --: | --: | --: |"]
    for r in runs:
        ratio = "—" if r.ratio is None else f"{r.ratio:.3f}"
        lines.append(f"| {r.path} | {r.method} | {r.dataset} | {r.model} | {r.n} | {100 * r.acc:.2f} ± {100 * r.std:.2f} "
                     f"| {r.networks} | {ratio} |")
    return "\n".join(lines)


def sweeps(runs: list[RunSummary]) -> dict[tuple[str, str, str], list[RunSummary]]:
    """Runs grouped by (method, dataset, model), each group sorted by n."""
    groups: dict[tuple[str, str, str], list[RunSummary]] = defaultdict(list)
    for r in runs:
        groups[r.group].append(r)
    return {g: sorted(rs, key=lambda r: r.n) for g, rs in groups.items()}


def plot_sweeps(runs: list[RunSummary], path: str | Path) -> None:
    """Test accuracy (mean ± std) against the number of distilled samples, one line per sweep
    (Wang et al. Fig. 3), with the full-data accuracy as a dashed line where known."""
    from matplotlib.figure import Figure  # here: show and import report without matplotlib

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for (method, dataset, model), group in sweeps(runs).items():
        line = ax.errorbar([r.n for r in group], [100 * r.acc for r in group], yerr=[100 * r.std for r in group],
                           marker="o", capsize=3, label=f"{method} ({dataset}, {model})")
        full = next((r.full_acc for r in group if r.full_acc is not None), None)
        if full is not None:
            ax.axhline(100 * full, linestyle="--", color=line[0].get_color(), linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("number of distilled samples")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))


def summarize_views(run: RunDir) -> str:
    """The lines of ``distill show`` that name a run's curves and its TensorBoard events
    (the ones in the run directory), for the runs that have them."""
    lines = [f"curves     {run.curves}"] if run.curves.exists() else []
    if run.tensorboard.is_dir():
        lines.append(f"events     tensorboard --logdir {run.tensorboard}")
    return "\n".join(lines)


def plot_run_curves(run_dirs: list[str], path: str | Path) -> list[str]:
    """The loss and accuracy curves of the runs ``run_dirs`` overlaid in ``path``
    (``curves.plot_overlay``); returns the runs left out because they log no iterations
    (baselines)."""
    logs = {d: RunDir(d).read_log() for d in run_dirs}
    plot_overlay({d: rows for d, rows in logs.items() if rows}, path)
    return [d for d, rows in logs.items() if not rows]


def summarize_distillation(run: RunDir, config: Config) -> str:
    """``distill show`` for a distillation: what was run, how it went, what it reached."""
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
        lines.append("lrs        " + " ".join(f"{v:.4f}" for v in m["lrs"]))
        for e in m.get("evaluations", []):
            lines.append(f"eval       {networks(e['models'])}: {100 * e['test_acc']['mean']:.2f}% ± {100 * e['test_acc']['std']:.2f}")
    else:
        resumes_from = run.checkpointed_iteration()
        lines.append("status     unfinished; " + ("it has no readable checkpoint" if resumes_from is None else
                     f"--resume restarts from iteration {resumes_from}") + f" (distill run -o {run.path} --resume)")
    return "\n".join(lines)


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


def summarize_continual(run: RunDir, config: Config) -> str:
    """The summary ``distill show`` prints for a continual run."""
    c = config.continual
    lines = [
        f"run        {run.path}",
        f"method     continual: {c.stream.name} ({c.stream.tasks} tasks), {config.model.name}, {continual_label(config)}",
        f"training   {c.epochs} epoch(s) per task, SGD lr {c.lr:g}, batch {c.batch_size}"
        + (f", memory {c.memory_per_task} per task, margin {c.memory_strength:g}" if c.learner == "gem" else ""),
    ]
    results = run.path / "continual.json"
    if not run.metrics.exists():
        if not run.checkpoint.exists():
            status = f"unfinished before its first task ended (start it again: distill run {run.config} -o {run.path} --overwrite)"
        else:
            done = run.read_checkpoint({"tasks_done"})["tasks_done"]
            status = f"unfinished after {done} of {c.stream.tasks} tasks (continue with: distill run -o {run.path} --resume)"
        return "\n".join(lines + [f"status     {status}"])
    record = json.loads(results.read_text())
    lines.append(f"result     ACC {100 * record['acc']:.2f}%, BWT {100 * record['bwt']:+.2f}, FWT {100 * record['fwt']:+.2f}")
    if record["distill_seconds"]:
        seconds = record["distill_seconds"]
        lines.append(f"memory     distilled in {sum(seconds) / len(seconds):.1f} s per task ({sum(seconds):.0f} s in all)")
    return "\n".join(lines)


def continual_label(config: Config) -> str:
    """The learner's name in figures: ``gem-real``, ``gem-distilled``, ``ewc`` or ``single``."""
    c = config.continual
    return f"gem-{c.memory}" if c.learner == "gem" else c.learner


def summarize_for_comparison(out: str | Path, cache: str | Path | None = None) -> RunSummary:
    """A finished run directory as a ``RunSummary``, with its full-data accuracy
    when ``cache`` (default: the config's ``train.cache``) holds it. Distillation with learned
    labels counts as its own method, so that a sweep does not mix hard and soft labels."""
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


def networks(n: int) -> str:
    """``n`` networks, in words: "1 network", "3 networks"."""
    return f"{n} network" + ("" if n == 1 else "s")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


def summarize_kernel(run: RunDir, config: Config) -> str:
    """``distill show`` for a kernel method (KIP, Label Solve): the kernel, the support set,
    the progress, the KRR test accuracy and the transfer to finite networks."""
    k, opts = config.kernel, config.kip
    labels = "learned labels" if config.method == "kip" and config.synthetic.labels == "learned" else (
        "solved labels" if config.method == "label_solve" else "fixed labels")
    lines = [
        f"run        {run.path}",
        f"method     {config.method}: {config.dataset.name}, kernel {k.name}-{k.depth} {k.kind} "
        f"(σ_w {k.w_std:.4g}, σ_b {k.b_std:g}), reg {opts.reg:g}, {opts.preprocess} preprocessing",
        f"support    {config.synthetic.n} samples ({config.synthetic.data_init} init), {labels}",
    ]
    if config.method == "kip":
        lines.append(f"kip        {opts.steps} steps of {opts.target_batch} targets, Adam lr {opts.lr:g}"
                     + (f", augment {'+'.join(opts.augment)} ({opts.augment_fraction:g} of each batch)" if opts.augment else ""))
    log = run.read_log()
    if log:
        last = log[-1]
        acc = f", held-out KRR {100 * float(last['krr_acc']):.2f}%" if last.get("krr_acc") else ""
        lines.append(f"progress   {'step' if config.method == 'kip' else 'block'} {last['iteration']}, loss {float(last['loss']):.4g}{acc}, "
                     f"{float(last['seconds']):.0f} s")
    if run.metrics.exists():
        m = run.read_metrics(("krr_acc", "transfer_acc"))
        krr, transfer = m["krr_acc"], m["transfer_acc"]
        t = opts.transfer
        kernel = f" (kernel of {m['kernel_networks']} random networks)" if m.get("kernel_networks") else ""
        lines.append(f"KRR acc    {100 * krr['mean']:.2f}% on the test split{kernel}")
        lines.append(f"transfer   {100 * transfer['mean']:.2f}% ± {100 * transfer['std']:.2f} over {transfer['n']} {config.model.name} "
                     f"networks ({t.steps} {t.optimizer} steps, lr {t.lr:g}, {t.loss})")
        for e in m.get("evaluations", []):
            kernel = f" (kernel of {e['kernel_networks']} random networks)" if e.get("kernel_networks") else ""
            lines.append(f"eval       KRR {100 * e['krr_acc']['mean']:.2f}%{kernel}, {networks(e['models'])}: "
                         f"{100 * e['transfer_acc']['mean']:.2f}% ± {100 * e['transfer_acc']['std']:.2f}")
    else:
        resumes_from = run.checkpointed_iteration()
        lines.append("status     unfinished; " + ("it has no readable checkpoint" if resumes_from is None else
                     f"--resume restarts from {'step' if config.method == 'kip' else 'block'} {resumes_from}")
                     + f" (distill run -o {run.path} --resume)")
    return "\n".join(lines)
