"""Speed of the NNGP/NTK kernels of ``distill.kernels``, next to the reference library's.

What is measured, for every case below, in float32 and float64: pairs per second of
``K = k(x1, x2)`` (``n1 × n2`` pairs; ``x1`` plays KIP's target batch, ``x2`` its support set)

* ``forward``          — ``k(x1, x2)`` under ``torch.no_grad()``;
* ``forward+backward`` — ``k(x1, x2)`` and the gradient of ``⟨K, R⟩`` (``R`` a fixed random
  ``[n1, n2]`` matrix) with respect to the support inputs ``x2``: what a KIP step needs.

Cases: FC-1 and FC-3 on 784-d inputs (1,000 × 100 pairs); ConvVec-3 (``conv``) on 28×28×1 and
32×32×3; the ConvNet's random-feature NNGP (``convnet_rf``, M = 8 networks of w = 128
channels, and a cheaper M = 4, w = 32) on 28×28×1 and 32×32×3; the exact ConvNet-3
(``convnet``) on 8×8×1 and, on a handful of pairs, on 28×28×1 (which ``KernelSpec.check``
refuses for real runs). Image sizes are chosen so that one call takes about a second; the
"1,000 × 100" columns project the seconds for KIP's 100 support × 1,000 target images (by
pairs, or for ``convnet_rf``, whose cost is the ``n1 + n2`` images' network passes, by images).
A second section measures the other side of ``convnet_rf``'s trade-off: its error against the
exact ConvNet-3 NNGP on 8×8 digits, for M·w from 128 to 4,096.

How. Every kernel is drawn through ``KernelSpec.draw`` (``block`` at its default), called once
to warm up (and, for ``convnet_rf``, to draw its networks), then timed on as many calls as
fit in ``TIME_BUDGET_S`` (1 to ``MAX_REPEATS``); the median is reported. One torch thread by
default (``--threads``): on a CPU shared with other work, torch's threads wait on each other.

The reference: neural-tangents 0.6.5 on JAX 0.4.23, jit-compiled, float32, forward only, on a
2-core machine of this kind (``/work/shared/notes/kernel-costs.md``); it is printed next to
the float32 forward figure of the same case.

Usage::

    python benchmarks/kernels.py             # all cases, writes benchmarks/results/kernels.{md,json}
    python benchmarks/kernels.py --quick     # a smoke test on fewer pairs, writes kernels_quick.{md,json}
    python benchmarks/kernels.py --sections rf_error   # one section, writes kernels_rf_error.{md,json}
    python benchmarks/kernels.py --sections kip_step   # seconds per KIP step, writes kernels_kip_step.{md,json}

The report is a list of sections (``SECTIONS``): each is a function of the parsed arguments
that returns a ``Section`` (title, notes, table); add a measurement by adding a function there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from distill.kernels import KernelSpec  # noqa: E402
from machine import machine_info  # noqa: E402  (benchmarks/machine.py, beside this script)

RESULTS = ROOT / "benchmarks" / "results"
TIME_BUDGET_S = 2.0
MAX_REPEATS = 3
KIP_PAIRS, KIP_IMAGES = 1000 * 100, 1000 + 100  # the projection: 1,000 targets × 100 support
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# neural-tangents' forward pairs/s (float32), from /work/shared/notes/kernel-costs.md: (reference key, kind) -> pairs/s
NEURAL_TANGENTS = {
    ("fc3-784", "ntk"): 17_000_000,
    ("conv3-28x28x1", "nngp"): 39_000,
    ("conv3-28x28x1", "ntk"): 26_000,
    ("conv3-32x32x3", "nngp"): 28_000,
    ("conv3-32x32x3", "ntk"): 19_000,
    ("convnet3-28x28x1", "ntk"): 21,
    ("convnet3-32x32x3", "nngp"): 12,
    ("convnet3-32x32x3", "ntk"): 11,
}


# --- the cases ----------------------------------------------------------------------------


def image_name(shape: tuple[int, ...]) -> str:
    """``(C, H, W)`` as ``HxWxC``, a flat input as ``d-d``."""
    return f"{shape[1]}x{shape[2]}x{shape[0]}" if len(shape) == 3 else f"{shape[0]}-d"


@dataclass(frozen=True)
class Case:
    """One kernel on ``n1 × n2`` inputs of ``shape``; ``reference`` keys ``NEURAL_TANGENTS``."""

    label: str
    spec: KernelSpec
    shape: tuple[int, ...]
    n1: int
    n2: int
    reference: str = ""

    @property
    def scales_with(self) -> str:
        return "images" if self.spec.name == "convnet_rf" else "pairs"


RF_RICH = dict(name="convnet_rf", kind="nngp", networks=8, width=128)
RF_CHEAP = dict(name="convnet_rf", kind="nngp", networks=4, width=32)


def cases(quick: bool) -> list[Case]:
    """Every case of the throughput table; ``quick`` shrinks the inputs (not the kernels)."""
    s = 4 if quick else 1  # shrink factor of n1
    out = [Case("FC-1", KernelSpec(name="fc", depth=1), (784,), 1000 // s, 100),
           Case("FC-3", KernelSpec(name="fc", depth=3), (784,), 1000 // s, 100, "fc3-784")]
    for shape in ((1, 28, 28), (3, 32, 32)):
        key = image_name(shape)
        out += [Case("ConvVec-3", KernelSpec(name="conv", kind=kind), shape, 100 // s, 100, f"conv3-{key}")
                for kind in ("nngp", "ntk")]
        out += [Case("ConvNet-3 RF, M=8 w=128", KernelSpec(**RF_RICH), shape, 20 // s, 10, f"convnet3-{key}"),
                Case("ConvNet-3 RF, M=4 w=32", KernelSpec(**RF_CHEAP), shape, 100 // s, 50, f"convnet3-{key}")]
    out += [Case("ConvNet-3 exact", KernelSpec(name="convnet", kind=kind), (1, 8, 8), 40 // s, 20)
            for kind in ("nngp", "ntk")]
    out.append(Case("ConvNet-3 exact", KernelSpec(name="convnet", kind="ntk", block=2), (1, 28, 28), 2, 1,
                    "convnet3-28x28x1"))
    return out


# --- timing -------------------------------------------------------------------------------


def median_seconds(call: Callable[[], object]) -> float:
    """Median wall seconds of ``call()`` after one warm-up call, over as many calls as fit in the budget."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times = []
    for _ in range(max(1, min(MAX_REPEATS, int(TIME_BUDGET_S / max(first, 1e-9))))):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_case(case: Case, dtype: torch.dtype) -> dict:
    """Seconds of one forward and one forward+backward call of ``case`` in ``dtype``."""
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(case.n1, *case.shape, generator=gen, dtype=dtype)
    x2 = torch.randn(case.n2, *case.shape, generator=gen, dtype=dtype)
    weights = torch.randn(case.n1, case.n2, generator=gen, dtype=dtype)
    kernel = case.spec.draw(torch.Generator().manual_seed(1))

    def forward() -> None:
        with torch.no_grad():
            kernel(x1, x2)

    def forward_backward() -> None:
        support = x2.clone().requires_grad_()
        torch.autograd.grad((kernel(x1, support) * weights).sum(), support)

    return {"forward_s": median_seconds(forward), "forward_backward_s": median_seconds(forward_backward)}


def throughput_record(case: Case, dtype_name: str, seconds: dict) -> dict:
    pairs = case.n1 * case.n2
    scale = KIP_IMAGES / (case.n1 + case.n2) if case.scales_with == "images" else KIP_PAIRS / pairs
    reference = NEURAL_TANGENTS.get((case.reference, case.spec.kind)) if dtype_name == "float32" else None
    return {
        "kernel": case.label, "name": case.spec.name, "kind": case.spec.kind, "depth": case.spec.depth,
        "inputs": image_name(case.shape), "dtype": dtype_name, "n1": case.n1, "n2": case.n2, "pairs": pairs,
        "forward_pairs_per_s": pairs / seconds["forward_s"],
        "forward_backward_pairs_per_s": pairs / seconds["forward_backward_s"],
        "kip_forward_s": seconds["forward_s"] * scale, "kip_forward_backward_s": seconds["forward_backward_s"] * scale,
        "projected_by": case.scales_with, "neural_tangents_forward_pairs_per_s": reference, **seconds,
        "spec": asdict(case.spec),
    }


# --- sections of the report -----------------------------------------------------------------


@dataclass
class Section:
    """A part of the report: a title, notes under it, a markdown table and the JSON records behind it."""

    title: str
    notes: str
    header: list[str]
    rows: list[list[str]]
    records: list[dict]


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "—" if value is None else format(value, spec)


def kernel_throughput(args: argparse.Namespace) -> Section:
    """Pairs per second of every case in both dtypes (module docstring)."""
    records = []
    for case in cases(args.quick):
        for dtype_name, dtype in DTYPES.items():
            record = throughput_record(case, dtype_name, time_case(case, dtype))
            records.append(record)
            print(f"{case.label:<24} {image_name(case.shape):<8} {case.spec.kind:<4} {dtype_name}  "
                  f"{case.n1}x{case.n2} pairs: forward {record['forward_pairs_per_s']:>12,.1f}/s  "
                  f"forward+backward {record['forward_backward_pairs_per_s']:>12,.1f}/s", flush=True)
    header = ["kernel", "inputs", "kind", "dtype", "pairs timed", "forward pairs/s", "fwd+bwd pairs/s",
              "1,000×100 forward s", "1,000×100 fwd+bwd s", "neural-tangents forward pairs/s (exact kernel)"]
    rows = [[r["kernel"], r["inputs"], r["kind"], r["dtype"], f"{r['n1']}×{r['n2']}",
             _fmt(r["forward_pairs_per_s"], ",.1f"), _fmt(r["forward_backward_pairs_per_s"], ",.1f"),
             _fmt(r["kip_forward_s"], ",.3f"), _fmt(r["kip_forward_backward_s"], ",.3f"),
             _fmt(r["neural_tangents_forward_pairs_per_s"])] for r in records]
    notes = ("Median of timed calls after a warm-up. fwd+bwd: the kernel and the gradient of ⟨K, R⟩ with respect to "
             "the support inputs x2. The 1,000×100 columns project the seconds for 1,000 target × 100 support images "
             "(by pairs; convnet_rf by images, its cost being their network passes). neural-tangents: forward only, "
             "float32, jit (kernel-costs.md), on the float32 rows; for convnet_rf it is the exact ConvNet kernel "
             "that the random features estimate.")
    return Section("Kernel throughput", notes, header, rows, records)


RF_SETTINGS = ((4, 32), (16, 32), (8, 128), (32, 128))  # (networks M, width w)
RF_DRAWS = 20


def relative_error(estimate: torch.Tensor, exact: torch.Tensor) -> float:
    """``‖K̂ − K‖ / ‖K‖`` (Frobenius)."""
    return ((estimate - exact).norm() / exact.norm()).item()


def random_feature_error(args: argparse.Namespace) -> Section:
    """The accuracy side of ``convnet_rf``'s trade-off: its NNGP against the exact ConvNet-3
    NNGP on 8×8 digits (scikit-learn's, standardised), over ``RF_DRAWS`` draws per setting."""
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images[:30 if args.quick else 60], dtype=torch.float64)
    x = ((images - images.mean()) / images.std())[:, None]
    exact = KernelSpec(name="convnet", kind="nngp").draw()(x, x)
    records = []
    for networks, width in RF_SETTINGS:
        spec = KernelSpec(name="convnet_rf", kind="nngp", networks=networks, width=width)
        draws = [spec.draw(torch.Generator().manual_seed(seed)) for seed in range(RF_DRAWS)]
        errors = [relative_error(kernel(x.float(), x.float()).double(), exact) for kernel in draws]
        records.append({"networks": networks, "width": width, "images": len(x), "draws": RF_DRAWS,
                        "mean_error": statistics.mean(errors), "max_error": max(errors), "errors": errors})
        print(f"convnet_rf M={networks} w={width}: error {statistics.mean(errors):.4f} (largest {max(errors):.4f})",
              flush=True)
    header = ["networks M", "width w", "mean error", "largest error"]
    rows = [[str(r["networks"]), str(r["width"]), _fmt(r["mean_error"], ".4f"), _fmt(r["max_error"], ".4f")]
            for r in records]
    notes = (f"convnet_rf (ConvNet-3 NNGP, float32) against the exact kernel (float64) on {len(x)} standardised "
             f"8×8 digits (pooled to 1×1: w features per network, a hard case); error = ‖K̂ − K‖ / ‖K‖ (Frobenius), "
             f"mean and largest over {RF_DRAWS} draws of the networks. The cost of a setting grows as M·w² "
             "(the throughput table).")
    return Section("Random-feature error", notes, header, rows, records)


KIP_SUPPORT, KIP_TARGETS = 100, 1000


def kip_step_cases(quick: bool) -> list[Case]:
    """The kernels a KIP run can use on 28×28 and 32×32×3 images, for the seconds-per-step table
    (the exact ConvNet kernel, about 1,000 pairs a second on 8×8 images, is left out: a step
    would take minutes)."""
    out = [Case("FC-3", KernelSpec(name="fc", depth=3), (784,), KIP_TARGETS, KIP_SUPPORT),
           Case("FC-3", KernelSpec(name="fc", depth=3), (3072,), KIP_TARGETS, KIP_SUPPORT)]
    for shape in ((1, 28, 28), (3, 32, 32)):
        out += [Case("ConvVec-3", KernelSpec(name="conv", kind="nngp"), shape, KIP_TARGETS, KIP_SUPPORT),
                Case("ConvNet-3 RF, M=4 w=32", KernelSpec(**RF_CHEAP), shape, KIP_TARGETS, KIP_SUPPORT),
                Case("ConvNet-3 RF, M=8 w=128", KernelSpec(**RF_RICH), shape, KIP_TARGETS, KIP_SUPPORT)]
    if quick:
        out = [Case(c.label, c.spec, c.shape, c.n1 // 10, c.n2 // 10) for c in out if c.spec.name != "conv"]
    return out


def kip_step_seconds(case: Case) -> float:
    """Median wall seconds of one step of ``distill.kip.kip`` (learned labels, no logging or
    checkpoints; a call of one step, repeated as ``median_seconds`` does) with ``case.n2`` support and ``case.n1`` target samples of ``case.shape``
    drawn from N(0, 1) over 10 classes, after one warm-up step."""
    from distill.kip import KipSettings, Targets, kip
    from distill.support import SupportSet

    gen = torch.Generator().manual_seed(0)
    pool = 2 * case.n1
    x, y = torch.randn(pool, *case.shape, generator=gen), torch.arange(pool) % 10
    targets = Targets(x, y, 10, x[:0], y[:0])
    support = SupportSet.from_real(x, y, case.n2, 10, True, gen)
    settings = KipSettings(steps=1, target_batch=case.n1, log_every=10**9, checkpoint_every=None)
    return median_seconds(lambda: kip(settings, case.spec, support, targets))


def kip_step_time(args: argparse.Namespace) -> Section:
    """Seconds per KIP step: the whole step (target batch, kernels, Cholesky, loss, backward,
    Adam) of the real engine, for 100 support × 1,000 target samples."""
    records = []
    for case in kip_step_cases(args.quick):
        seconds = kip_step_seconds(case)
        records.append({"kernel": case.label, "name": case.spec.name, "kind": case.spec.kind, "inputs": image_name(case.shape),
                        "support": case.n2, "targets": case.n1, "seconds_per_step": seconds, "spec": asdict(case.spec)})
        print(f"KIP step {case.label:<24} {image_name(case.shape):<8} {case.spec.kind:<4} "
              f"{case.n2} support x {case.n1} targets: {seconds:.3f} s", flush=True)
    header = ["kernel", "inputs", "kind", "support × targets", "seconds per step", "steps per hour"]
    rows = [[r["kernel"], r["inputs"], r["kind"], f"{r['support']}×{r['targets']}", _fmt(r["seconds_per_step"], ",.3f"),
             _fmt(3600 / r["seconds_per_step"], ",.0f")] for r in records]
    notes = ("One step of `distill.kip.kip` (float32, learned labels; no held-out evaluation, log or checkpoint), median "
             f"of up to {MAX_REPEATS} steps after a warm-up, on N(0, 1) inputs. For real images the cost is the same: it "
             "depends on the shapes only.")
    return Section("Seconds per KIP step", notes, header, rows, records)


SECTIONS: dict[str, Callable[[argparse.Namespace], Section]] = {
    "throughput": kernel_throughput,
    "rf_error": random_feature_error,
    "kip_step": kip_step_time,
}


# --- reporting ----------------------------------------------------------------------------


def markdown(info: dict, sections: list[Section], seconds: float) -> str:
    lines = [
        "# Kernel benchmark: distill.kernels (NNGP / NTK, NTK parameterisation, σ_w = √2, σ_b = 0.1)",
        "",
        f"{info['date']} · {info['platform']} · {info['cpu']} ({info['cpu_count']} CPUs, load "
        f"{info['load_average_at_start'][0]:.2f} at start) · torch {info['torch']} · "
        f"torch threads {info['threads']} · {seconds:.0f} s in all",
    ]
    for section in sections:
        lines += ["", f"## {section.title}", "", section.notes, "",
                  "| " + " | ".join(section.header) + " |",
                  "|" + "|".join(":--" if i < 5 else "--:" for i in range(len(section.header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in section.rows]
    return "\n".join(lines) + "\n"


def save(stem: Path, info: dict, sections: list[Section], seconds: float) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(markdown(info, sections, seconds))
    report = {"machine": info, "seconds": seconds, "sections": {s.title: s.records for s in sections}}
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs per case: a smoke test")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info(threads=torch.get_num_threads())
    start = time.perf_counter()
    sections = [SECTIONS[name](args) for name in args.sections]
    seconds = time.perf_counter() - start
    stem = RESULTS / "_".join(["kernels"] + (["quick"] if args.quick else []) +
                              (args.sections if args.sections != list(SECTIONS) else []))
    save(stem, info, sections, seconds)
    print()
    print(markdown(info, sections, seconds))
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")


if __name__ == "__main__":
    main()
