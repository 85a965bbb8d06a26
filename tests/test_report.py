"""What ``distill show`` and ``distill compare`` print (distill.report): ratio, distillation size, the
table, and the train / eval --model / compare commands on quick digits runs."""

import json

import pytest

from distill.cli import main
from distill.report import RunSummary, distillation_size, markdown_table, plot_run_curves, sweeps
from distill.rundir import RunDir

from conftest import QUICK


def summary(n, acc, full=0.8, train_size=1000, method="distill"):
    return RunSummary(f"r{n}", method, "digits", "mlp", n, acc, 0.01, 10, full, train_size)


def test_ratio_and_distillation_size_of_a_sweep():
    runs = [summary(10, 0.4), summary(100, 0.74), summary(50, 0.728), summary(20, 0.6)]
    assert runs[0].ratio == pytest.approx(0.5)
    # ratios 0.5, 0.925, 0.91, 0.75: the smallest n with ratio >= 0.9 is 50, 5% of 1000 samples
    assert distillation_size(runs, 0.9) == pytest.approx(5.0)
    assert distillation_size(runs, 0.92) == pytest.approx(10.0)
    assert distillation_size(runs, 0.95) is None
    assert distillation_size([summary(10, 0.4, full=None)], 0.1) is None


def test_table_and_sweeps():
    runs = [summary(20, 0.5), summary(10, 0.4), summary(10, 0.3, method="random_real")]
    table = markdown_table(runs).splitlines()
    assert len(table) == 5 and "| r20 | distill | digits | mlp | 20 | 50.00 ± 1.00 | 10 | 0.625 |" in table
    groups = sweeps(runs)
    assert [r.n for r in groups[("distill", "digits", "mlp")]] == [10, 20]
    assert len(groups[("random_real", "digits", "mlp")]) == 1


def test_overlaid_curves_leave_out_the_runs_that_log_nothing(tmp_path):
    logged, baseline = RunDir(tmp_path / "logged"), RunDir(tmp_path / "baseline")
    logged.create()
    logged.start_log()
    logged.append_log({"iteration": 2, "loss": 0.5, "seconds": 1.0, "test_acc": 0.7})
    baseline.create()
    assert plot_run_curves([str(logged.path), str(baseline.path)], tmp_path / "curves.png") == [str(baseline.path)]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


@pytest.mark.slow
def test_train_eval_model_and_compare_commands(tmp_path, capsys):
    cache = f"train.cache={tmp_path / 'full.json'}"
    runs = []
    for n in (20, 40):
        out = str(tmp_path / f"n{n}")
        assert main(["run", "-o", out, *sets(*QUICK, f"synthetic.n={n}", "init.kind=random", cache)]) == 0
        runs.append(out)
    assert main(["train", *sets(*QUICK, "train.epochs=3", "train.lr=0.01", cache)]) == 0
    first = capsys.readouterr().out
    assert "digits/mlp/0: full-data test accuracy" in first and "cached" in first
    entry = json.loads((tmp_path / "full.json").read_text())["digits/mlp/0"]
    assert entry["train_size"] == 1437 and 0.5 < entry["test_acc"] <= 1
    assert main(["train", *sets(*QUICK, "train.epochs=3", "train.lr=0.01", cache)]) == 0  # from the cache
    assert f"{100 * entry['test_acc']:.2f}%" in capsys.readouterr().out

    assert main(["eval", runs[0], "--model", "lenet", "--models", "3", "--lr", "0.1"]) == 0
    assert "lenet, lr 0.1" in capsys.readouterr().out
    assert main(["eval", runs[0], "--model", "lenet", "--models", "2"]) == 0
    evaluations = json.loads((tmp_path / "n20" / "metrics.json").read_text())["evaluations"]
    assert [(e["model"], e["lr"], e["test_acc"]["n"]) for e in evaluations] == [("lenet", 0.1, 3), ("lenet", "learned", 2)]

    plot, curves = tmp_path / "sweep.png", tmp_path / "curves.png"
    assert main(["compare", *runs, "--plot", str(plot), "--ratio", "0.01", "--cache", str(tmp_path / "full.json"),
                 "--curves", str(curves)]) == 0
    out = capsys.readouterr().out
    assert out.count("| distill | digits | mlp |") == 2
    assert "distillation size at ratio 0.01: 1.39% of the training set" in out  # n = 20 of 1,437
    assert plot.stat().st_size > 0
    assert f"curves: {curves}\n" in out and curves.stat().st_size > 0
    drawn = plot.read_bytes()
    assert main(["compare", *runs, "--plot", str(plot)]) == 2  # a file there is kept unless --overwrite
    assert "already exists; pass --overwrite" in capsys.readouterr().err and plot.read_bytes() == drawn
    plot.write_bytes(b"")
    assert main(["compare", *runs, "--plot", str(plot), "--overwrite", "--cache", str(tmp_path / "full.json")]) == 0
    assert plot.stat().st_size > 0

    assert main(["eval", runs[0], "--model", "lenett"]) == 2
    assert "did you mean 'lenet'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "run", "--lr", "0.1"], "--lr goes with --model"),
        (["eval", "run", "--model", "mlp", "--lr", "-1"], "--lr must be a positive number"),
        (["eval", "/nonexistent/run", "--model", "mlp"], "not a run directory"),
        (["compare", "run", "--ratio", "2"], "--ratio"),
        (["compare", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_user_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
