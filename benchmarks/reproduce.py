"""Run the reproduction rows and write benchmarks/results/reproduction.md.

Every row of ``benchmarks/paper_figures.yaml`` names an experiment file, a method
(``distill`` or a baseline), optional ``--set`` overrides and the paper's figure with its
source. Each row runs into ``benchmarks/results/runs/<row name>/``; a finished run
directory already there (``metrics.json`` present, ``config.yaml`` equal to the requested
config except for ``dataset.root``) is reused instead of run again.

    python benchmarks/reproduce.py --root ../shared/data                        # every row
    python benchmarks/reproduce.py --root ../shared/data --rows mnist_fixed_100_kmeans trec6_knn
    python benchmarks/reproduce.py --root ../shared/data --epochs 50 --set outer.decay_epochs=15
    python benchmarks/reproduce.py --report-only                                # rewrite the report from the run dirs

``--resume`` continues a row whose run directory holds an unfinished run of the same config.
``--epochs E`` (distillation rows: ``outer.epochs``, with ``outer.decay_epochs`` scaled by
the same factor unless ``--set`` gives it) or ``--iterations N`` (``outer.epochs`` such that
the run takes ``N`` iterations) shorten the distillation rows; the report says so per row.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill.cli import INTERRUPTED  # noqa: E402
from distill.config import load_config, validate  # noqa: E402
from distill.errors import UserError  # noqa: E402
from distill.experiment import run_experiment  # noqa: E402
from distill.rundir import RunDir  # noqa: E402

FIGURES = ROOT / "benchmarks" / "paper_figures.yaml"
RUNS = ROOT / "benchmarks" / "results" / "runs"
REPORT = ROOT / "benchmarks" / "results" / "reproduction.md"
FULL_DATA = ROOT / "benchmarks" / "results" / "full_data.json"  # distill train's cache (train.cache)
TRAIN_SIZES = {"mnist": 60000, "cifar10": 50000, "trec6": 5452, "trec50": 5452, "sst5": 8544}
KERNEL_METHODS = ("kip", "label_solve")
CONTINUAL_METHODS = ("continual",)


def run_name(row: dict) -> str:
    """The row's run directory under ``RUNS``: its ``run``, else its ``name`` (two rows may
    report one run: its chosen data and, with ``figure: final``, the data at the end)."""
    return row.get("run", row["name"])


def load_rows(path: Path = FIGURES) -> list[dict]:
    return yaml.safe_load(path.read_text())["rows"]


def load_full_data_entries(path: Path = FIGURES) -> list[dict]:
    """The figures file's ``full_data`` list: the full-data results the report shows."""
    return yaml.safe_load(path.read_text()).get("full_data", [])


def requested_config(row: dict, args: argparse.Namespace):
    """The row's config: its experiment file, the data root, its overrides, then the shortening."""
    overrides = [f"dataset.root={args.root}", f"method={row.get('method', 'distill')}", *row.get("set", [])]
    if row.get("method", "distill") == "distill":
        overrides += shortening(row, args)
    else:
        distilled = row.get("distilled_run")
        if distilled and (RUNS / distilled / "metrics.json").exists():
            overrides.append(f"baseline.distilled_run={(RUNS / distilled).relative_to(ROOT)}")
    if args.models:
        overrides.append(f"eval.models={args.models}")
    return load_config(ROOT / row["experiment"], overrides + list(args.overrides))


def shortening(row: dict, args: argparse.Namespace) -> list[str]:
    base = load_config(ROOT / row["experiment"])
    if args.iterations:
        epochs = args.iterations / iterations_per_epoch(base)
    elif args.epochs:
        epochs = args.epochs
    else:
        return []
    out = [f"outer.epochs={epochs:g}"]
    if not any(o.startswith("outer.decay_epochs=") for o in args.overrides):
        out.append(f"outer.decay_epochs={base.outer.decay_epochs * epochs / base.outer.epochs:g}")
    return out


def same_run(run: RunDir, config) -> bool:
    """A finished run of ``config`` (``dataset.root`` aside) is already in ``run``."""
    if not run.metrics.exists() or not run.config.exists():
        return False
    done = validate(run.read_config()).model_dump()
    wanted = config.model_dump()
    done["dataset"]["root"] = wanted["dataset"]["root"]
    return done == wanted


def run_row(row: dict, args: argparse.Namespace) -> str:
    """Run (or reuse) one row; returns what happened."""
    config = requested_config(row, args)
    run = RunDir(RUNS / run_name(row))
    if same_run(run, config):
        return "reused"
    resume = args.resume and run.checkpoint.exists() and run.config.exists() and validate(run.read_config()) == config
    if run.path.exists() and any(run.path.iterdir()) and not resume:
        return (f"skipped: {run.path} holds a different or unfinished run; move it away to run this row"
                + ("" if args.resume else " (or continue an unfinished one with --resume)"))
    started = time.perf_counter()
    run_experiment(config, run.path, resume=resume)
    return f"{'resumed' if resume else 'ran'} in {time.perf_counter() - started:.0f} s"


def full_iterations(row: dict) -> int | None:
    """The outer iterations of a distillation row's experiment file as written (the paper's schedule)."""
    if row.get("method", "distill") != "distill":
        return None
    return planned_iterations(load_config(ROOT / row["experiment"]))


def iterations_per_epoch(config) -> int:
    """Outer iterations per pass over the training set: whole batches of ``outer.batch_size``."""
    return TRAIN_SIZES[config.dataset.name] // config.outer.batch_size


def planned_iterations(config) -> int | None:
    """The iterations a run of ``config`` makes: outer iterations of a distillation, KIP's steps."""
    if config.method == "distill":
        return math.ceil(config.outer.epochs * iterations_per_epoch(config))
    return config.kip.steps if config.method == "kip" else None


def shown(path: Path) -> Path:
    """``path`` relative to the repository root when it lies inside it (as the report's commands run there)."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def missing_status(row: dict, run: RunDir) -> str:
    """What the report says of a row without ``metrics.json``: why it was stopped (``stopped``),
    how far an unfinished run got (its checkpoint's iteration) and how to continue it, or ``not run``."""
    if "stopped" in row:
        return f"stopped: {row['stopped']}"
    if run.checkpoint.exists():
        done = run.read_checkpoint({"iteration"})["iteration"]
        planned = planned_iterations(validate(run.read_config()))
        return (f"unfinished: iteration {done:,}" + (f" of {planned:,}" if planned else "")
                + f"; continue with `distill run -o {shown(run.path)} --resume`")
    return "not run"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def report_row(row: dict) -> str:
    run = RunDir(RUNS / run_name(row))
    method = row.get("method", "distill")
    paper = row.get("paper") or {}
    paper_acc, paper_std = paper.get("acc"), paper.get("std")
    paper_text = "—" if paper_acc is None else f"{paper_acc}" + (f" ± {paper_std}" if paper_std is not None else "")
    if paper and not paper.get("checked", True):
        paper_text += " †"
    if not run.metrics.exists():
        status = missing_status(row, run)
        return f"| {row['name']} | {row['what']} | {status} | {paper_text} | — | — | — | — | {paper.get('source', '')} |"
    m = run.read_metrics()
    acc = final_test_acc(run) if row.get("figure") == "final" else m["test_acc"]
    ours = 100 * acc["mean"]
    spread = f" ± {100 * acc['std']:.2f}" if acc["n"] > 1 and acc["std"] is not None else ""
    ours_text = f"{ours:.2f}{spread} (n={acc['n']})"
    diff = "—" if paper_acc is None else f"{ours - paper_acc:+.2f}"
    if method == "distill":
        full = full_iterations(row)
        done = m["iterations"]
        iterations = f"{done:,}" + ("" if done >= full else f" of {full:,} (shortened)")
        if row.get("figure") == "final":
            iterations += "; the data at the end"
        elif "selected" in m:
            iterations += f"; the data of iteration {m['selected']['iteration']:,}, best on training samples"
        seconds = m["seconds"] + m.get("eval_seconds", 0)
    else:
        seconds = m["seconds"]
        setting = f"k={m['k']}, {m['distance']}" if method == "knn" else f"lr {m['lr']}, {m['epochs']} ep."
        iterations = setting
    source = paper.get("source", "") + (f" ({paper['note']})" if "note" in paper else "")
    return (f"| {row['name']} | {row['what']} | {ours_text} | {paper_text} | {diff} | {iterations} | "
            f"{seconds:,.0f} s | {m.get('device', '?')} | {source} |")


def final_test_acc(run: RunDir) -> dict:
    """The test accuracy of the data at the end of a distillation: ``log.csv``'s last row
    (a run with ``eval.select`` keeps another iteration's data in ``metrics.json``), over
    ``eval.models_during`` networks (one for a fixed initialisation)."""
    rows = [r for r in run.read_log() if r.get("test_acc")]
    if not rows:
        raise UserError(f"{run.log} has no test accuracy: the row's figure: final needs eval.every > 0")
    last, config = rows[-1], validate(run.read_config())
    n = 1 if config.init.kind in ("fixed", "pretrained_fixed") else config.eval.models_during
    return {"mean": float(last["test_acc"]), "std": None, "n": n}


def paper_text(paper: dict) -> str:
    acc, std = paper.get("acc"), paper.get("std")
    return "—" if acc is None else f"{acc}" + (f" ± {std}" if std is not None else "")


def kernel_row(row: dict) -> str:
    """A row of the kernel-methods table: KRR and transfer accuracy next to the paper's."""
    run = RunDir(RUNS / run_name(row))
    paper, transfer_paper = row.get("paper") or {}, row.get("transfer_paper") or {}
    sources = "; ".join(p["source"] for p in (paper, transfer_paper) if "source" in p)
    if not run.metrics.exists():
        status = missing_status(row, run)
        return (f"| {row['name']} | {row['what']} | {status} | {paper_text(paper)} | — | — | {paper_text(transfer_paper)} | — | — "
                f"| {sources} |")
    m = run.read_metrics()
    krr, transfer = 100 * m["krr_acc"]["mean"], m["transfer_acc"]
    diff = "—" if paper.get("acc") is None else f"{krr - paper['acc']:+.2f}"
    transfer_text = f"{100 * transfer['mean']:.2f} ± {100 * transfer['std']:.2f} (n={transfer['n']})"
    config = validate(run.read_config())
    if m["method"] == "kip":
        schedule = f"{m['steps']:,} steps × {config.kip.target_batch:,} targets"
    else:
        schedule = f"one pass, {m['targets_seen']:,} targets"
    seconds = m["seconds"] + m.get("eval_seconds", 0)
    return (f"| {row['name']} | {row['what']} | {krr:.2f}{wider_kernel_text(m)} | {paper_text(paper)} | {diff} | {transfer_text} | "
            f"{paper_text(transfer_paper)} | {schedule} | {seconds:,.0f} s, {m.get('threads', '?')} thread(s) | {sources} |")


def wider_kernel_text(metrics: dict) -> str:
    """The KRR accuracy of a ``convnet_rf`` run re-measured (``distill eval --kernel-networks``)
    with the most random networks, beyond those of its own figure; empty if there is none."""
    own = metrics.get("kernel_networks") or 0
    wider = [e for e in metrics.get("evaluations", []) if (e.get("kernel_networks") or 0) > own]
    if not wider:
        return ""
    best = max(wider, key=lambda e: e["kernel_networks"])  # the first of equals: its earliest measurement
    return f" ({100 * best['krr_acc']['mean']:.2f} with a {best['kernel_networks']}-network eval kernel)"


def continual_row(row: dict) -> str:
    """A row of the continual-learning table: final average accuracy (ACC), backward and
    forward transfer (BWT, FWT) of the task stream, next to the paper's ACC."""
    run = RunDir(RUNS / run_name(row))
    paper = row.get("paper") or {}
    if not run.metrics.exists():
        status = missing_status(row, run)
        return f"| {row['name']} | {row['what']} | {status} | {paper_text(paper)} | — | — | — | — | {paper.get('source', '')} |"
    m = run.read_metrics()
    acc = 100 * m["acc"]
    diff = "—" if paper.get("acc") is None else f"{acc - paper['acc']:+.2f}"
    return (f"| {row['name']} | {row['what']} | {acc:.2f} | {paper_text(paper)} | {diff} | {100 * m['bwt']:+.2f} | "
            f"{100 * m['fwt']:+.2f} | {m['seconds']:,.0f} s | {paper.get('source', '')} |")


def full_data_rows(entries: list[dict], cache: Path = FULL_DATA) -> list[str]:
    """The full-data table: each ``full_data`` entry of the figures file (a ``key`` of
    ``distill train``'s cache, dataset/model/seed) with the accuracy the cache holds."""
    results = json.loads(cache.read_text()) if cache.exists() else {}
    lines = []
    for entry in entries:
        paper = entry.get("paper") or {}
        result = results.get(entry["key"])
        if result is None:
            cells = ["not run", paper_text(paper), "—", "—", "—"]
        else:
            ours, settings = 100 * result["test_acc"], result["settings"]
            cells = [f"{ours:.2f}", paper_text(paper), "—" if paper.get("acc") is None else f"{ours - paper['acc']:+.2f}",
                     training_text(settings),
                     f"{result['seconds']:,.0f} s"]
        lines.append("| " + " | ".join([entry["key"], entry["what"], *cells, paper.get("source", "")]) + " |")
    return lines


def training_text(settings: dict) -> str:
    """A full-data result's training settings in words, e.g. "Adam 0.001 (x0.1 every 10 epochs),
    30 epochs of batches of 128, flip+crop"."""
    decay = f" (x{settings['decay_factor']:g} every {settings['decay_epochs']} epochs)" if settings.get("decay_epochs") else ""
    augment = f", {'+'.join(settings['augment'])}" if settings.get("augment") else ""
    return f"Adam {settings['lr']:g}{decay}, {settings['epochs']} epochs of batches of {settings['batch_size']}{augment}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


WRITE_UPS = [
    "## Write-ups",
    "",
    "The measured histories, variants and notes behind these rows; how to rerun every row:",
    "[docs/reproducing.md](../../docs/reproducing.md).",
    "",
    "- [digits](../../docs/results/digits.md): the bundled default",
    "- [mnist](../../docs/results/mnist.md): MNIST, hard labels",
    "- [soft-labels](../../docs/results/soft-labels.md): MNIST, learned labels",
    "- [cifar10](../../docs/results/cifar10.md): CIFAR-10, distilled and baselines",
    "- [text](../../docs/results/text.md): TREC-6, TREC-50 and SST-5",
    "- [baselines](../../docs/results/baselines.md): baselines, cross-architecture, distillation ratios",
    "- [adaptation](../../docs/results/adaptation.md): pretrained initialisations, domain adaptation",
    "- [continual](../../docs/results/continual.md): permuted MNIST with GEM",
    "- [speed](../../docs/results/speed.md): speed and memory of the unroll",
    "- [kernels](../../docs/results/kernels.md): KIP and Label Solve on MNIST and CIFAR-10",
    "",
]


def write_report(rows: list[dict], path: Path = REPORT, full_data: list[dict] | None = None) -> None:
    kernel_rows = [r for r in rows if r.get("method") in KERNEL_METHODS]
    continual_rows = [r for r in rows if r.get("method") in CONTINUAL_METHODS]
    rows = [r for r in rows if r.get("method") not in KERNEL_METHODS + CONTINUAL_METHODS]
    lines = [
        "# Reproduction report",
        "",
        "Written by `python benchmarks/reproduce.py` from the run directories in `benchmarks/results/runs/`",
        "(one per row: `config.yaml`, `metrics.json`, and for distillation `log.csv`). Paper figures and their",
        "sources are in `benchmarks/paper_figures.yaml`. Test accuracy in %, mean ± std over n networks",
        "(baselines: random networks; fixed-init distillation: the one network, n=1; kNN: n memory sets).",
        "The *iterations* column gives the distillation iterations (and the full schedule's when shortened) or,",
        "for a baseline, the grid cell chosen on held-out training samples. Wall time includes the evaluation.",
        "",
        f"Machine of this report: {machine()}; every row ran on this machine type unless its device says otherwise.",
        "",
        "| row | what | ours | paper | diff | iterations / chosen | wall time | device | paper source |",
        "| --- | --- | --: | --: | --: | --- | --: | --- | --- |",
        *[report_row(row) for row in rows],
        "",
        *(["## Kernel methods (KIP and Label Solve)", "",
           "KRR: kernel ridge-regression test accuracy (%) of the support set on the whole test split, with the",
           "kernel it was learned with; transfer: finite networks of the row's model trained on it (mean ± std).",
           "Paper: Nguyen, Novak, Xiao, Lee (003_cb9d1c7e2af598e5.txt) Table 1 (KRR) and Table 2 (transfer).",
           "",
           "| row | what | KRR ours | KRR paper | diff | transfer ours | transfer paper | schedule | wall time | paper source |",
           "| --- | --- | --: | --: | --: | --: | --: | --- | --: | --- |",
           *[kernel_row(row) for row in kernel_rows], ""] if kernel_rows else []),
        *(["## Continual learning (permuted MNIST, GEM)", "",
           "ACC: the average test accuracy (%) over the tasks after the last one; BWT and FWT: backward and forward",
           "transfer (Lopez-Paz & Ranzato) in points. Paper: Wang et al. (004_974dd8e9e9bd7831.txt) Table 4, ACC.",
           "",
           "| row | what | ACC ours | ACC paper | diff | BWT | FWT | wall time | paper source |",
           "| --- | --- | --: | --: | --: | --: | --: | --: | --- |",
           *[continual_row(row) for row in continual_rows], ""] if continual_rows else []),
        *(["## Full-data training (the distillation ratio's denominator)", "",
           "`distill train`: the row's model trained on the whole training set from the distillation runs' fixed",
           "initial network, test accuracy in % (`benchmarks/results/full_data.json`, keyed dataset/model/seed).",
           "",
           "| key | what | ours | paper | diff | training | wall time | paper source |",
           "| --- | --- | --: | --: | --: | --- | --: | --- |",
           *full_data_rows(full_data), ""] if full_data else []),
        *(["† quoted from the paper from memory, not checked against the paper's text; see",
            "`benchmarks/paper_figures.yaml`.", ""] if any(not (r.get("paper") or {}).get("checked", True) for r in rows) else []),
        "Notes. Distillation rows are the run directories found in `benchmarks/results/runs/` (rows marked",
        "*shortened* ran fewer outer iterations than the paper's schedule). Baselines are evaluated as in",
        "Wang et al. (random networks, the best cell of the learning-rate × epochs grid, which includes the",
        "distillation run's learned rates when that run is present), except that the cell is chosen with 10",
        "networks on held-out training samples and only the chosen cell is evaluated with 200 networks on the",
        "test set (fewer where the row's *what* says so). A fixed-init distillation row is one network; its baselines are random networks. Wall times",
        "were measured on a 2-core machine shared with other jobs (a run got about half a core).",
        "",
        *WRITE_UPS,
    ]
    path.write_text("\n".join(lines))


def interrupt(signum, frame) -> None:
    """SIGTERM as Ctrl-C: the running distillation saves its checkpoint and stops."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="*", help="row names (default: every row of paper_figures.yaml)")
    p.add_argument("--experiments", nargs="*", help="only the rows of these experiment files")
    p.add_argument("--root", default="data", help="dataset.root for every row (on this project's machines: ../shared/data)")
    short = p.add_mutually_exclusive_group()
    short.add_argument("--epochs", type=float, help="distillation rows: outer.epochs (decay_epochs scaled alike)")
    short.add_argument("--iterations", type=int, help="distillation rows: run about this many outer iterations")
    p.add_argument("--models", type=int, help="eval.models for every row (default: each config's, 200)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="extra override for every row")
    p.add_argument("--resume", action="store_true", help="continue a row's unfinished run (same config) from its checkpoint")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from the run directories")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # the rows' paths (experiments/, --root, distilled runs) are relative to the repository root
    rows = load_rows()
    chosen = [r for r in rows if (not args.rows or r["name"] in args.rows)
              and (not args.experiments or any(Path(e).name == Path(r["experiment"]).name for e in args.experiments))]
    if args.rows and len(chosen) < len(args.rows):
        missing = set(args.rows) - {r["name"] for r in chosen}
        print(f"unknown rows: {', '.join(sorted(missing))}", file=sys.stderr)
        return 2
    code = 0
    if not args.report_only:
        signal.signal(signal.SIGTERM, interrupt)  # kill saves the running row's checkpoint, as Ctrl-C does
        for row in chosen:
            try:
                print(f"{row['name']}: {run_row(row, args)}", flush=True)
            except UserError as error:
                print(f"{row['name']}: error: {error}", file=sys.stderr, flush=True)
            except KeyboardInterrupt:
                print(f"{row['name']}: interrupted; its run keeps the last checkpoint it saved: continue it with --resume",
                      file=sys.stderr, flush=True)
                code = INTERRUPTED
                break
    write_report(rows, full_data=load_full_data_entries())
    print(f"report: {REPORT.relative_to(ROOT)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
