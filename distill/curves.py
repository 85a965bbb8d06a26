"""Training curves: every numeric column of a run's log against its iterations.

Generic over the columns a log holds (a distillation's ``loss, lr_min, lr_mean, lr_max,
test_acc, ...``, a kernel method's ``loss, krr_acc``, a continual run's accuracy after
each task): each column goes into a panel by its name (``PANELS``), and a column no rule
names gets a panel of its own. Columns that count progress (``PROGRESS``) are not drawn.
No torch; matplotlib is imported only to draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import atomic_write

PROGRESS = ("iteration", "epoch", "seconds", "targets")  # counters of progress, not measurements
LOG_SPAN = 10  # a log-scale panel is drawn on a log scale only when its values span this factor
FEW = 20  # a curve of at most this many points shows them as markers
Series = dict[str, tuple[list[float], list[float]]]  # column -> (x values, y values)


@dataclass(frozen=True)
class Panel:
    """One subplot: the columns whose name ``matches``, drawn on a log scale when ``log``
    (and the values span a wide range), accuracies (``percent``) in %."""

    title: str
    matches: Callable[[str], bool]
    log: bool = False
    percent: bool = False


PANELS = (
    Panel("loss", lambda name: name == "loss" or name.endswith("_loss"), log=True),
    Panel("step sizes η", lambda name: name.startswith("lr_"), log=True),
    Panel("accuracy (%)", lambda name: name.endswith("_acc"), percent=True),
    Panel("gradient norm", lambda name: name.startswith("grad_norm"), log=True),
)


def measurements(row: dict[str, Any], x: str = "iteration") -> dict[str, float]:
    """The finite numeric values of one log row (as read, or as written), but the column
    ``x`` and ``PROGRESS``; empty cells (an accuracy measured only now and then) are left out."""
    values = {name: float(value) for name, value in row.items() if name not in PROGRESS and name != x and value not in ("", None)}
    return {name: value for name, value in values.items() if math.isfinite(value)}


def log_series(rows: Sequence[dict[str, str]], x: str = "iteration") -> Series:
    """Every column's ``measurements`` against column ``x``."""
    series: Series = {}
    for row in rows:
        for name, value in measurements(row, x).items():
            xs, ys = series.setdefault(name, ([], []))
            xs.append(float(row[x]))
            ys.append(value)
    return series


def panels_of(columns: Sequence[str]) -> list[tuple[Panel, list[str]]]:
    """The panels that hold ``columns``, in ``PANELS`` order, then one per unmatched column."""
    grouped = [(panel, [c for c in columns if panel.matches(c)]) for panel in PANELS]
    matched = {c for _, cs in grouped for c in cs}
    return [(p, cs) for p, cs in grouped if cs] + [(Panel(c, lambda name, c=c: name == c), [c]) for c in columns if c not in matched]


def plot_curves(rows: Sequence[dict[str, str]], path: str | Path, title: str = "", x: str = "iteration") -> None:
    """``path`` (written atomically): every column of ``rows`` against ``x``, panels as
    ``panels_of`` groups them; a measurement taken now and then, or a short curve, has markers."""
    series = log_series(rows, x)
    groups = panels_of(list(series)) or [(PANELS[0], [])]
    fig, axes = _figure(len(groups), title)
    for ax, (panel, columns) in zip(axes, groups):
        for column in columns:
            xs, ys = series[column]
            _draw(ax, panel, xs, ys, column, markers=len(xs) < len(rows) or len(xs) <= FEW)
        _finish(ax, panel, x, [v for c in columns for v in series[c][1]])
    _save(fig, path)


def plot_overlay(runs: dict[str, Sequence[dict[str, str]]], path: str | Path, x: str = "iteration") -> None:
    """``path``: the loss and the accuracies of several runs (``label -> log rows``) on
    shared axes, one colour per run (its accuracies in that colour, one line style each)."""
    chosen = (PANELS[0], PANELS[2])
    fig, axes = _figure(len(chosen), "")
    styles = ("-", "--", ":", "-.")
    for colour, (label, rows) in enumerate(runs.items()):
        series = log_series(rows, x)
        for ax, panel in zip(axes, chosen):
            columns = [c for c in series if panel.matches(c)]
            for style, column in zip(styles * len(columns), columns):
                xs, ys = series[column]
                _draw(ax, panel, xs, ys, f"{label}: {column}", markers=len(xs) < len(rows) or len(xs) <= FEW,
                      colour=f"C{colour % 10}", style=style)
    for ax, panel in zip(axes, chosen):
        values = [v for line in ax.get_lines() for v in line.get_ydata()]
        _finish(ax, panel, x, values)
    _save(fig, path)


def _figure(count: int, title: str):
    from matplotlib.figure import Figure  # here: report and show import this module without matplotlib

    columns = min(count, 3)
    rows = -(-count // columns)
    width, height, top = 4.2 * columns, 3.0 * rows + (0.3 if title else 0), 0.35 + (0.3 if title else 0)
    fig = Figure(figsize=(width, height))
    # fixed margins (inches): tight_layout would take as long again as the drawing itself
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - top / height,
                        wspace=0.25, hspace=0.45)
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax in axes[count:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return fig, list(axes[:count])


def _draw(ax, panel: Panel, xs: list[float], ys: list[float], label: str, markers: bool, colour: str | None = None,
          style: str = "-") -> None:
    scale = 100 if panel.percent else 1
    ax.plot(xs, [scale * y for y in ys], style, color=colour, marker="o" if markers else None, markersize=3,
            linewidth=1.2, label=label)


def _finish(ax, panel: Panel, x: str, values: list[float]) -> None:
    """Title, axis labels (whole numbers on the x axis: iterations, tasks), legend, and the
    log scale when the panel asks for it and ``values`` are positive and span at least a
    factor ``LOG_SPAN``."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if panel.log and values and min(values) > 0 and max(values) >= LOG_SPAN * min(values):
        ax.set_yscale("log")
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel(x, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "nothing logged yet", ha="center", va="center", transform=ax.transAxes, fontsize=8)


def _save(fig, path: str | Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80))
