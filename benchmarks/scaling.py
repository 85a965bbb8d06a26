"""Seconds per outer iteration of one distillation on 1, 2, ... processes, and what the
processes' exchange costs.

What is measured:

* **Iterations.** ``torchrun --nproc_per_node W -m distill run`` of LeNet with random init,
  a fixed total of ``K`` initialisations per iteration (``K/W`` per process), T = 30 inner
  steps (10 steps of 10 images × 3 epochs), real batches of 1,024, for each ``W`` of
  ``--processes``; the figure is the median of the per-iteration seconds of ``log.csv``
  (a row every iteration), the first iteration left out. On MNIST with ``--root`` (a folder
  with ``MNIST/raw``), else on the bundled digits (8×8, batches of all 1,437 images).
* **Exchange.** The all-reduce of one iteration's synthetic gradients (the images, labels
  and learning rates of that case, float32) between ``W`` processes, alone: median seconds
  over ``EXCHANGES`` calls after a warm-up.
* **KIP.** Seconds per KIP step (``method: kip``, the FC-3 NTK, 100 support images with
  learned labels, 5,000 targets a step on MNIST, 1,000 on digits; no held-out evaluation),
  the kernel rows split among the ``W`` processes, the median over ``--iterations`` steps.

Each process runs ``--threads`` torch threads (default 1: on a 2-core machine, 2 processes
of one thread use the cores that 1 process of 2 threads would). The same script runs
unchanged on a multi-GPU machine: ``--device auto`` puts each process on its own GPU.

Usage::

    python benchmarks/scaling.py --root ../shared/data              # MNIST, W = 1 and 2, writes benchmarks/results/scaling.{md,json}
    python benchmarks/scaling.py --processes 1 2 4 --models 8 --iterations 10
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EXCHANGES = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(processes: int, module_args: list[str], threads: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *module_args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"torchrun failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def case_overrides(args: argparse.Namespace) -> list[str]:
    dataset = ["dataset.name=mnist", f"dataset.root={args.root}", "outer.batch_size=1024"] if args.root else \
        ["dataset.name=digits", "outer.batch_size=1437"]
    per_epoch = 58 if args.root else 1  # 60,000 // 1,024 or 1,437 // 1,437 iterations per outer epoch
    return [*dataset, "model.name=lenet", "init.kind=random", f"outer.models_per_iteration={args.models}",
            "synthetic.n=100", "synthetic.steps=10", "synthetic.epochs=3", f"outer.epochs={args.iterations / per_epoch:.6f}",
            "eval.models=2", "eval.every=0", "run.log_every=1", "run.progress=false", f"run.device={args.device}"]


def kip_overrides(args: argparse.Namespace) -> list[str]:
    dataset = ["dataset.name=mnist", f"dataset.root={args.root}", "kip.target_batch=5000"] if args.root else \
        ["dataset.name=digits", "kip.target_batch=1000"]
    return [*dataset, "method=kip", "kernel.name=fc", "kernel.depth=3", "synthetic.n=100", "synthetic.labels=learned",
            f"kip.steps={args.iterations}", "kip.holdout=0", "kip.transfer.models=1", "kip.transfer.steps=1",
            "run.log_every=1", "run.progress=false", f"run.device={args.device}"]


def iteration_seconds(processes: int, args: argparse.Namespace, overrides: list[str]) -> dict:
    """Run a case on ``processes`` processes; the per-iteration seconds from its log."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        sets = [a for item in overrides for a in ("--set", item)]
        started = time.perf_counter()
        torchrun(processes, ["-m", "distill", "run", "-o", str(out), *sets], args.threads)
        wall = time.perf_counter() - started
        with open(out / "log.csv", newline="") as f:
            seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    per_iteration = [b - a for a, b in zip(seconds, seconds[1:])]
    return {"processes": processes, "threads_per_process": args.threads, "models_total": args.models,
            "models_per_process": args.models // processes, "iterations": len(seconds),
            "seconds_per_iteration": statistics.median(per_iteration), "wall_seconds": round(wall, 1)}


def exchange_numel(args: argparse.Namespace) -> int:
    """Elements all-reduced per iteration: the images (100 × C×H×W), the 30 learning rates, the loss."""
    image = 28 * 28 if args.root else 8 * 8
    return 100 * image + 30 + 1


def exchange_worker(numel: int) -> None:
    """In a torchrun process: time ``EXCHANGES`` all-reduces of ``numel`` float32 values."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if torch.cuda.is_available() else torch.device("cpu")
    t = torch.ones(numel, device=device)
    dist.all_reduce(t)
    times = []
    for _ in range(EXCHANGES):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        dist.all_reduce(t)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if dist.get_rank() == 0:
        print(json.dumps({"exchange_seconds": statistics.median(times)}))
    dist.destroy_process_group()


def exchange_seconds(processes: int, args: argparse.Namespace) -> dict:
    numel = exchange_numel(args)
    done = torchrun(processes, [str(Path(__file__).resolve()), "--exchange-worker", str(numel)], args.threads)
    seconds = json.loads(done.stdout.strip().splitlines()[-1])["exchange_seconds"]
    return {"processes": processes, "numel": numel, "bytes": 4 * numel, "seconds": seconds}


def speed_up(one: float | None, seconds: float) -> str:
    return "—" if one is None else f"{one / seconds:.2f}×"


def markdown(info: dict, runs: list[dict], exchanges: list[dict], kip_runs: list[dict], args: argparse.Namespace) -> str:
    case = "LeNet / MNIST" if args.root else "LeNet / digits (no --root: the bundled 8×8 digits)"
    one = next((r["seconds_per_iteration"] for r in runs if r["processes"] == 1), None)
    lines = [
        "# Scaling: one distillation over several processes",
        "",
        f"{info['date']} · {info['cpu']} ({info['cpu_count']} CPUs, load {info['load_average_at_start'][0]:.2f} at start) · torch "
        f"{info['torch']} · `python benchmarks/scaling.py {' '.join(sys.argv[1:])}`",
        "",
        f"## Seconds per outer iteration: {case}, random init, K = {args.models} in all, T = 30 (10 steps × 3 epochs)",
        "",
        f"`torchrun --nproc_per_node W -m distill run`, {args.threads} torch thread(s) per process, "
        f"device {args.device}; median of the per-iteration seconds of {args.iterations} iterations, the first left out.",
        "",
        "| processes W | K per process | threads per process | s / iteration | speed-up | wall (incl. start-up, eval) |",
        "|--:|--:|--:|--:|--:|--:|",
        *[f"| {r['processes']} | {r['models_per_process']} | {r['threads_per_process']} | {r['seconds_per_iteration']:.3f} | "
          f"{speed_up(one, r['seconds_per_iteration'])} | {r['wall_seconds']:.0f} s |" for r in runs],
        "",
        "## The exchange alone",
        "",
        "All-reduce of one iteration's synthetic gradients (float32), median of "
        f"{EXCHANGES} calls; the share of an iteration it takes is the overhead of splitting the work.",
        "",
        "| processes W | values | bytes | s / all-reduce | share of an iteration |",
        "|--:|--:|--:|--:|--:|",
    ]
    for e in exchanges:
        it = next((r["seconds_per_iteration"] for r in runs if r["processes"] == e["processes"]), None)
        share = "—" if it is None else f"{100 * e['seconds'] / it:.2f}%"
        lines.append(f"| {e['processes']} | {e['numel']:,} | {e['bytes']:,} | {e['seconds']:.6f} | {share} |")
    targets = "MNIST, 5,000" if args.root else "digits, 1,000"
    kip_one = next((r["seconds_per_iteration"] for r in kip_runs if r["processes"] == 1), None)
    lines += ["", f"## Seconds per KIP step: FC-3 NTK, 100 support images, {targets} targets a step", "",
              "The rows of K_ts and K_ss split among the processes, gathered, and the support gradient summed "
              f"(docs/distributed.md); median over {args.iterations} steps, the first left out.", "",
              "| processes W | threads per process | s / step | speed-up |", "|--:|--:|--:|--:|",
              *[f"| {r['processes']} | {r['threads_per_process']} | {r['seconds_per_iteration']:.3f} | "
                f"{speed_up(kip_one, r['seconds_per_iteration'])} |" for r in kip_runs], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="dataset.root holding MNIST (default: the bundled digits)")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--models", type=int, default=4, help="K, the initialisations per iteration in all (default 4)")
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "auto"], help="auto: one GPU per process where there are GPUs")
    p.add_argument("--exchange-worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.exchange_worker:
        exchange_worker(args.exchange_worker)
        return
    from machine import machine_info  # benchmarks/machine.py, beside this script (it imports torch)

    info = machine_info(threads_per_process=args.threads)
    runs, kip_runs = [], []
    for w in args.processes:
        runs.append(iteration_seconds(w, args, case_overrides(args)))
        print(f"W={w}: {runs[-1]['seconds_per_iteration']:.3f} s / iteration", flush=True)
    for w in args.processes:
        kip_runs.append(iteration_seconds(w, args, kip_overrides(args)))
        print(f"W={w}: {kip_runs[-1]['seconds_per_iteration']:.3f} s / KIP step", flush=True)
    exchanges = []
    for w in (w for w in args.processes if w > 1):
        exchanges.append(exchange_seconds(w, args))
        print(f"W={w}: all-reduce of {exchanges[-1]['numel']:,} values {exchanges[-1]['seconds']:.6f} s", flush=True)
    report = markdown(info, runs, exchanges, kip_runs, args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scaling.md").write_text(report)
    (RESULTS / "scaling.json").write_text(json.dumps({"machine": info, "runs": runs, "exchanges": exchanges, "kip": kip_runs},
                                                     indent=2) + "\n")
    print()
    print(report)
    print(f"wrote {RESULTS / 'scaling.md'} and {RESULTS / 'scaling.json'}")


if __name__ == "__main__":
    main()
