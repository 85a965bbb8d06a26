"""Several run directories side by side: a markdown table, the distillation ratio, the
"% distillation size" of a sweep, and the plot of accuracy against the number of samples.

Sucholutsky & Schonlau's relative metrics: the distillation ratio ``ρ = acc(distilled) /
acc(full data)`` and, for a sweep over ``n``, the distillation size
``min{n : ρ(n) ≥ target} / N_train`` in percent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from .files import atomic_write


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
