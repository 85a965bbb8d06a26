"""Speed and memory of the core unroll of the bilevel method (``distill.unroll``).

Setting: LeNet on MNIST-sized inputs (1×28×28, 10 classes), run as a ``FunctionalNet``;
synthetic data of ``S = 10`` steps × 10 samples (hard labels ``0 … 9`` in every step),
``T = S × epochs`` inner steps of size ``η = 0.02``; ``K`` xavier-initialised weight
vectors; an outer loss on a batch of 1,024 random real inputs. For every ``(T, K)``:

* ``stored``    — ``hypergradient(..., mode="stored")``: one outer iteration, vmapped over K;
* ``recompute`` — the same with ``mode="recompute"``;
* ``loop``      — the K initialisations one at a time: K calls of stored-mode
  ``hypergradient`` on ``theta0[k:k+1]``, their gradients averaged (what vmap replaces);
* ``forward``   — the forward-only unroll: ``train(net, theta0, x, labels, lrs)`` and the
  outer loss of ``θ_T`` on the real batch (in the same micro-batches as ``hypergradient``), with
  no gradient to the synthetic data (the floor an outer iteration is compared with).

How. Every measurement runs in a fresh subprocess (the script re-invokes itself and reads
one JSON line back), so no measurement inherits another's allocator state.

* Peak memory (``--one T K MODE``): the subprocess builds the problem, warms up with a
  one-step unroll of the same K and mode (loads kernels, sizes allocator pools), then
  measures one full call. CPU: the growth of the resident set during the call, ``VmHWM −
  VmRSS`` from ``/proc/self/status``, where ``VmRSS`` is read just before the call and the
  high-water mark ``VmHWM`` is reset to the current RSS first (``echo 5 >
  /proc/self/clear_refs``; the kernel tracks it exactly, so short peaks a sampling thread
  would miss are caught). Before the reset the warm-up's garbage is collected and glibc is
  asked to return freed heap pages (``malloc_trim``), so memory the call reuses from the
  warm-up cannot hide inside the baseline. Where the reset is refused, ``VmHWM`` is the
  lifetime peak, which the small warm-up does not reach. CUDA (``--device cuda``):
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the bytes
  allocated before the call (tensors only, not the caching allocator's reserve).
* Time (``--time T K``): one subprocess per ``(T, K)`` times all four modes on the same
  problem, round-robin: a warm-up round, then as many rounds as fit in about 20 s per
  mode (1 to 5); the median wall time of each mode is reported, in seconds per outer
  iteration (CUDA: synchronised before reading the clock). The ratios compare modes
  measured side by side in one process: on a shared virtual machine, separate processes
  running the same work differed by up to 20%, which is as large as the effects measured.

Goals checked at the end: (1) vmap at K=16 takes at most 0.5× the loop's time, at each T;
(2) recompute's peak memory at T=300 is at most 0.25× stored's, at each K; (3) a full
outer iteration takes at most 3× the forward-only unroll, at each (T, K), for both modes.

Threads: ``--threads`` is passed to every subprocess (default: torch's own, one per
core). On a CPU shared with other work, use ``--threads 1``: when another process keeps a
core busy, torch's OpenMP threads wait on each other and small ops (this LeNet on 10
images) run tens of times slower, which measures the neighbour, not the unroll.

Usage::

    python benchmarks/unroll.py            # T ∈ {10, 30, 100, 300}, K ∈ {1, 4, 16}
    python benchmarks/unroll.py --quick    # T ∈ {10, 30}, K ∈ {1, 4}: a smoke test
    python benchmarks/unroll.py --one 300 16 stored   # one memory measurement, JSON on stdout
    python benchmarks/unroll.py --time 300 16         # the four modes' times, JSON on stdout

The full run writes ``benchmarks/results/unroll.{md,json}``; ``--quick`` writes
``unroll_quick.{md,json}`` so that it never overwrites the full table.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.func import vmap  # noqa: E402

from distill.functional import FunctionalNet  # noqa: E402
from distill.inits import init_weights  # noqa: E402
from distill.models import build_model  # noqa: E402
from distill.unroll import hypergradient, outer_batch_plan, train  # noqa: E402
from machine import machine_info as shared_machine_info  # noqa: E402  (benchmarks/machine.py)

INPUT_SHAPE = (1, 28, 28)
CLASSES = 10
STEPS = 10  # S: synthetic steps of CLASSES samples each
REAL_BATCH = 1024
LR = 0.02
FULL_TS, FULL_KS = (10, 30, 100, 300), (1, 4, 16)
QUICK_TS, QUICK_KS = (10, 30), (1, 4)
MODES = ("stored", "recompute", "loop", "forward")
TIME_BUDGET_S = 20.0
MAX_REPEATS = 5
MIB = 2**20
RESULTS = ROOT / "benchmarks" / "results"

# The goals: (vmap/loop time at K=16), (recompute/stored memory at T=300), (outer/forward time).
VMAP_GOAL, MEMORY_GOAL, OVERHEAD_GOAL = 0.5, 0.25, 3.0


# --- the problem and the measured calls ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class Problem:
    """One outer iteration's inputs: network, ``θ₀`` [K, P], synthetic steps, ``η`` [T], real batch."""

    net: FunctionalNet
    theta0: Tensor
    x: Tensor
    labels: Tensor
    lrs: Tensor
    real_x: Tensor
    real_labels: Tensor


def make_problem(steps: int, k: int, device: str, seed: int = 0) -> Problem:
    """LeNet, ``k`` xavier ``θ₀``, random synthetic data for ``steps`` inner steps, a real batch."""
    gen = torch.Generator().manual_seed(seed)
    module = build_model("lenet", INPUT_SHAPE, CLASSES)
    net = FunctionalNet.of(module)
    theta0 = torch.stack([init_weights(net, "xavier", 1.0, gen) for _ in range(k)])
    x = torch.randn(STEPS, CLASSES, *INPUT_SHAPE, generator=gen)
    labels = torch.arange(CLASSES).repeat(STEPS, 1)
    real_x = torch.randn(REAL_BATCH, *INPUT_SHAPE, generator=gen)
    real_labels = torch.randint(CLASSES, (REAL_BATCH,), generator=gen)
    module.to(device)
    tensors = (theta0, x, labels, torch.full((steps,), LR), real_x, real_labels)
    return Problem(net, *(t.to(device) for t in tensors))


def outer_iteration(problem: Problem, mode: str) -> Tensor:
    """``hypergradient`` over all K at once (vmap); returns dL/dx̃."""
    p = problem
    return hypergradient(p.net, p.theta0, p.x, p.labels, p.lrs, p.real_x, p.real_labels, mode=mode).x


def looped_outer_iteration(problem: Problem) -> Tensor:
    """The same outer iteration with a Python loop over the K models: the mean of K single-model dL/dx̃."""
    p = problem
    per_model = [
        hypergradient(p.net, p.theta0[k : k + 1], p.x, p.labels, p.lrs, p.real_x, p.real_labels, mode="stored").x
        for k in range(len(p.theta0))
    ]
    return torch.stack(per_model).mean(0)


def forward_unroll(problem: Problem) -> Tensor:
    """The same unroll without any gradient to the synthetic data: equation (1) to ``θ_T``
    and the outer loss ``L`` of ``θ_T`` on the real batch (forward only); returns ``L``."""
    p = problem
    final = train(p.net, p.theta0, p.x, p.labels, p.lrs)
    parts, chunk_size = outer_batch_plan(p.net, final, REAL_BATCH)  # as the outer loss of `hypergradient`
    loss_of = vmap(p.net.loss, in_dims=(0, None, None), chunk_size=chunk_size)
    with torch.no_grad():
        return sum(loss_of(final, p.real_x[part], p.real_labels[part]).mean() * len(p.real_labels[part]) / REAL_BATCH
                   for part in parts)


WORKLOADS: dict[str, Callable[[Problem], Tensor]] = {
    "stored": lambda p: outer_iteration(p, "stored"),
    "recompute": lambda p: outer_iteration(p, "recompute"),
    "loop": looped_outer_iteration,
    "forward": forward_unroll,
}


# --- memory and time probes --------------------------------------------------------


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap pages back to the OS (no-op off glibc)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass


def memory_in_use(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.memory_allocated(device)
    return _proc_status_bytes("VmRSS")


def peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    return _proc_status_bytes("VmHWM")


def timed(call: Callable[[], object], device: str) -> float:
    """Wall seconds of one ``call()``."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    call()
    sync()
    return time.perf_counter() - start


def measure_memory(steps: int, k: int, mode: str, device: str) -> dict:
    """Peak memory of one call after a one-step warm-up (see the module docstring)."""
    problem = make_problem(steps, k, device)
    work = WORKLOADS[mode]
    work(dataclasses.replace(problem, lrs=problem.lrs[:1]))
    release_free_memory()
    reset_peak(device)
    before = memory_in_use(device)
    first_s = timed(lambda: work(problem), device)
    peak = peak_memory(device) - before
    return {
        "T": steps, "K": k, "mode": mode, "peak_mib": peak / MIB, "baseline_mib": before / MIB,
        "first_call_s": first_s, "threads": torch.get_num_threads(),
    }


def measure_times(steps: int, k: int, device: str) -> dict:
    """Every mode's wall seconds per outer iteration, timed round-robin on one problem."""
    problem = make_problem(steps, k, device)
    calls = {mode: functools.partial(WORKLOADS[mode], problem) for mode in MODES}
    warm_up = {mode: timed(calls[mode], device) for mode in MODES}
    rounds = max(1, min(MAX_REPEATS, int(TIME_BUDGET_S * len(MODES) / sum(warm_up.values()))))
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            times[mode].append(timed(calls[mode], device))
    return {
        "T": steps, "K": k, "seconds": {mode: statistics.median(t) for mode, t in times.items()},
        "times": times, "warm_up_s": warm_up, "threads": torch.get_num_threads(),
    }


# --- running the grid --------------------------------------------------------------


def run_in_subprocess(what: list[str], args: argparse.Namespace) -> dict:
    """This script with ``what`` (``--one T K MODE`` or ``--time T K``) in a fresh
    interpreter; a failure (e.g. killed for memory) becomes ``{"error": ...}``."""
    command = [sys.executable, str(Path(__file__).resolve()), *what, "--device", args.device]
    if args.threads:
        command += ["--threads", str(args.threads)]
    proc = subprocess.run(command, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": reason}
    return json.loads(lines[-1])


def describe(steps: int, k: int, memories: dict[str, dict], times: dict) -> str:
    lines = []
    for mode in MODES:
        seconds = times.get("seconds", {}).get(mode)
        time_text = f"{seconds:9.4f} s/it" if seconds is not None else f"time FAILED: {times.get('error')}"
        m = memories[mode]
        memory_text = f"peak {m['peak_mib']:8.1f} MiB" if "peak_mib" in m else f"memory FAILED: {m['error']}"
        lines.append(f"T={steps:<3} K={k:<2} {mode:<9} {time_text}  {memory_text}")
    return "\n".join(lines)


def run_grid(ts: tuple[int, ...], ks: tuple[int, ...], args: argparse.Namespace) -> list[dict]:
    """One record per (T, K): every mode's peak memory (a subprocess each) and time (one subprocess)."""
    records = []
    for steps in ts:
        for k in ks:
            memories = {mode: run_in_subprocess(["--one", str(steps), str(k), mode], args) for mode in MODES}
            times = run_in_subprocess(["--time", str(steps), str(k)], args)
            print(describe(steps, k, memories, times), flush=True)
            records.append({"T": steps, "K": k, "memory": memories, "time": times})
    return records


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


RATIOS = ("vmap_over_loop_time", "recompute_over_stored_memory", "stored_over_forward_time", "recompute_over_forward_time")


def table_rows(records: list[dict]) -> list[dict]:
    """One row per (T, K) with the four modes' times and memories and their ratios."""
    rows = []
    for record in records:
        sec = {mode: record["time"].get("seconds", {}).get(mode) for mode in MODES}
        mib = {mode: record["memory"][mode].get("peak_mib") for mode in MODES}
        rows.append(
            {
                "T": record["T"],
                "K": record["K"],
                "seconds": sec,
                "peak_mib": mib,
                "vmap_over_loop_time": _ratio(sec["stored"], sec["loop"]),
                "recompute_over_stored_memory": _ratio(mib["recompute"], mib["stored"]),
                "stored_over_forward_time": _ratio(sec["stored"], sec["forward"]),
                "recompute_over_forward_time": _ratio(sec["recompute"], sec["forward"]),
            }
        )
    return rows


# --- goals -------------------------------------------------------------------------


def _check(where: str, value: float | None, limit: float) -> dict:
    return {"where": where, "value": value, "pass": value is not None and value <= limit}


def _goal(name: str, limit: float, checks: list[dict]) -> dict:
    status = "SKIP" if not checks else "PASS" if all(c["pass"] for c in checks) else "FAIL"
    return {"goal": name, "limit": limit, "status": status, "checks": checks}


def evaluate_goals(rows: list[dict]) -> list[dict]:
    return [
        _goal(
            "vmap at K=16 takes at most 0.5x the Python loop's time (each T)",
            VMAP_GOAL,
            [_check(f"T={r['T']}", r["vmap_over_loop_time"], VMAP_GOAL) for r in rows if r["K"] == 16],
        ),
        _goal(
            "recompute peak memory at T=300 at most 0.25x stored's (each K)",
            MEMORY_GOAL,
            [_check(f"K={r['K']}", r["recompute_over_stored_memory"], MEMORY_GOAL) for r in rows if r["T"] == 300],
        ),
        _goal(
            "stored outer iteration at most 3x the forward-only unroll (each T, K)",
            OVERHEAD_GOAL,
            [_check(f"T={r['T']} K={r['K']}", r["stored_over_forward_time"], OVERHEAD_GOAL) for r in rows],
        ),
        _goal(
            "recompute outer iteration at most 3x the forward-only unroll (each T, K)",
            OVERHEAD_GOAL,
            [_check(f"T={r['T']} K={r['K']}", r["recompute_over_forward_time"], OVERHEAD_GOAL) for r in rows],
        ),
    ]


# --- reporting ---------------------------------------------------------------------


def machine_info(args: argparse.Namespace, threads: int) -> dict:
    info = shared_machine_info(threads=threads, device=args.device)
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(args.device)
    return info


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(info: dict, rows: list[dict], goals: list[dict]) -> str:
    memory = "GPU max_memory_allocated" if info["device"].startswith("cuda") else "resident-set growth"
    lines = [
        "# Unroll benchmark: LeNet, 1×28×28, 10 classes, 10 steps × 10 samples, real batch 1024",
        "",
        f"{info['date']} · {info['platform']} · {info['cpu']} ({info['cpu_count']} CPUs, "
        f"load {info['load_average_at_start'][0]:.2f} at start) · torch {info['torch']} · "
        f"torch threads {info['threads']} · device {info.get('gpu', info['device'])}",
        "",
        f"Seconds per outer iteration (median of the modes timed round-robin in one process); "
        f"peak memory = {memory} during one call. "
        "vmap/loop = stored ÷ loop time; rec/sto mem = recompute ÷ stored peak; "
        "sto/fwd, rec/fwd = outer iteration ÷ forward-only time.",
        "",
        "| T | K | stored s/it | recompute s/it | loop s/it | forward-only s/it | stored peak MiB "
        "| recompute peak MiB | vmap/loop time | rec/sto mem | sto/fwd time | rec/fwd time |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        s, m = r["seconds"], r["peak_mib"]
        times = [_fmt(s[mode], ".4f") for mode in MODES]
        memories = [_fmt(m[mode], ".1f") for mode in ("stored", "recompute")]
        ratios = [_fmt(r[key], ".2f") for key in RATIOS]
        cells = [str(r["T"]), str(r["K"]), *times, *memories, *ratios]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Goals", ""] + [f"- {goal_line(g)}" for g in goals]
    return "\n".join(lines) + "\n"


def goal_line(goal: dict) -> str:
    checks = ", ".join(f"{c['where']}: {_fmt(c['value'], '.2f')}x" for c in goal["checks"]) or "not measured in this run"
    return f"{goal['status']} — {goal['goal']}: {checks}"


def save(stem: Path, info: dict, measurements: list[dict], rows: list[dict], goals: list[dict]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(markdown(info, rows, goals))
    report = {"machine": info, "rows": rows, "goals": goals, "measurements": measurements}
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


# --- entry point -------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="T in {10, 30}, K in {1, 4}: a smoke test")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--one", nargs=3, metavar=("T", "K", "MODE"), help="one memory measurement, printed as JSON")
    parser.add_argument("--time", nargs=2, metavar=("T", "K"), help="the four modes' times, printed as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        steps, k, mode = int(args.one[0]), int(args.one[1]), args.one[2]
        if mode not in MODES:
            sys.exit(f"unknown mode {mode!r}; choose one of {MODES}")
        print(json.dumps(measure_memory(steps, k, mode, args.device)))
        return
    if args.time:
        print(json.dumps(measure_times(int(args.time[0]), int(args.time[1]), args.device)))
        return
    ts, ks = (QUICK_TS, QUICK_KS) if args.quick else (FULL_TS, FULL_KS)
    info = machine_info(args, torch.get_num_threads())
    measurements = run_grid(ts, ks, args)
    rows = table_rows(measurements)
    goals = evaluate_goals(rows)
    stem = RESULTS / ("unroll_quick" if args.quick else "unroll")
    save(stem, info, measurements, rows, goals)
    print()
    print(markdown(info, rows, goals))
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")


if __name__ == "__main__":
    main()
