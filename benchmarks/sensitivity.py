"""How far a fixed-init result moves when the distilled images move a little.

A fixed-initialisation figure is the test accuracy of one network after ``T`` large GD
steps on a handful of images. This script measures how sharply that number depends on the
images: for each run directory and each relative noise level ``σ``, it trains the run's
own network on ``draws`` copies of the distilled data with

    x̃' = x̃ + σ · std(x̃) · ε,   ε ~ N(0, I),

(labels and learned step sizes unchanged) and reports the test accuracy's mean, std, min
and max over the draws, next to the unperturbed figure. It prints a markdown table and
writes it to ``benchmarks/results/sensitivity.md``.

    PYTHONPATH=. python benchmarks/sensitivity.py benchmarks/results/runs/mnist_fixed_10_T3_full --root ../shared/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from distill.config import validate  # noqa: E402
from distill.evaluate import evaluate  # noqa: E402
from distill.build import build, sampler_of  # noqa: E402
from distill.seeds import Stream, generator  # noqa: E402
from distill.rundir import RunDir  # noqa: E402
from distill.synthetic import DistilledData  # noqa: E402



def perturbed_accuracies(run_dir: Path, root: str, sigmas: list[float], draws: int) -> dict:
    """The unperturbed accuracy and, per ``σ``, the accuracies of ``draws`` perturbed copies."""
    run = RunDir(run_dir)
    raw = run.read_config()
    raw["dataset"]["root"] = root
    config = validate(raw)
    if config.init.kind != "fixed":
        raise SystemExit(f"{run_dir} is a {config.init.kind}-init run; this script measures fixed-init runs")
    setup = build(config)
    state = run.load_checkpoint()["sampler"] if run.checkpoint.exists() else None
    theta0 = sampler_of(setup, state).held_out(1).to(setup.device)
    data = DistilledData.load(run.distilled)

    def accuracy(x: torch.Tensor) -> float:
        copy = DistilledData(x, data.labels.detach(), data.raw_lrs.detach(), data.num_classes, data.label_softmax)
        return evaluate(setup.net, copy, theta0, setup.real.test_x, setup.real.test_y, config.eval.batch_size).test_acc.mean

    x = data.x.detach()
    scale = x.std()
    rows = {}
    for i, sigma in enumerate(sigmas):
        gen = generator(config.seed, Stream.SENSITIVITY, i)
        rows[sigma] = torch.tensor([accuracy(x + sigma * scale * torch.randn(x.shape, generator=gen)) for _ in range(draws)])
    return {"unperturbed": accuracy(x), "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="fixed-init run directories")
    p.add_argument("--root", default="data", help="dataset.root (on this project's machines: ../shared/data)")
    p.add_argument("--sigmas", nargs="+", type=float, default=[1e-4, 1e-3, 1e-2])
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks" / "results" / "sensitivity.md")
    args = p.parse_args()

    header = [
        "# Sensitivity of fixed-init results to small changes of the distilled images",
        "",
        "Written by `benchmarks/sensitivity.py`: test accuracy (%) of each run's own network trained on",
        f"{args.draws} copies of its distilled data with the images moved by σ · std(x̃) · N(0, I).",
        "",
        "| run | unperturbed | σ | mean ± std | min | max |",
        "| --- | --: | --: | --: | --: | --: |",
    ]
    new = []
    for run_dir in args.runs:
        result = perturbed_accuracies(run_dir, args.root, args.sigmas, args.draws)
        for sigma, acc in result["rows"].items():
            acc = 100 * acc
            new.append(f"| {run_dir.name} | {100 * result['unperturbed']:.2f} | {sigma:g} | "
                       f"{acc.mean():.2f} ± {acc.std():.2f} | {acc.min():.2f} | {acc.max():.2f} |")
    text = "\n".join(header + kept_rows(args.out, {r.name for r in args.runs}) + new) + "\n"
    print(text)
    args.out.write_text(text)


def kept_rows(path: Path, replaced: set[str]) -> list[str]:
    """The table rows already in ``path`` for runs other than ``replaced`` (measured earlier)."""
    if not path.exists():
        return []
    rows = [line for line in path.read_text().splitlines() if line.startswith("| ") and not line.startswith(("| run ", "| ---"))]
    return [row for row in rows if row.split("|")[1].strip() not in replaced]


if __name__ == "__main__":
    main()
