"""The baselines as run directories (distill.methods.baseline): ``distill baseline`` and
``distill run`` with a baseline method, end to end on the digits, and their user errors."""

import json

import pytest

from distill import baselines as B
from distill.choices import BASELINES
from distill.cli import main

from conftest import QUICK


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_command_writes_a_run_directory(method, tmp_path, capsys):
    out = tmp_path / method
    quick = [*QUICK, "baseline.sets=2", "baseline.candidates=4", "baseline.lrs=[0.1,0.3]", "baseline.epochs=[1]",
             "baseline.search_models=2", "baseline.search_samples=200"]
    assert main(["baseline", "experiments/digits.yaml", "--method", method, "-o", str(out), *sets(*quick)]) == 0
    printed = capsys.readouterr().out
    assert method in printed
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("method", "dataset", "model", "init", "n_distilled", "steps", "epochs", "test_acc", "seconds"):
        assert key in metrics
    assert metrics["method"] == method and metrics["n_distilled"] == 20
    assert (out / "config.yaml").exists()
    if method == "knn":
        assert metrics["test_acc"]["n"] == 2 and metrics["test_acc"]["mean"] > 0.5
        assert len(metrics["grid"]) == len(B.KNN_GRID)
    else:
        assert metrics["test_acc"]["n"] == 4 and (out / "distilled.pt").exists()
        assert {c["epochs"] for c in metrics["grid"]} == {1, 2}  # the grid and the distilled epoch count
        # with two learning rates, every constant cell is on an edge of the grid
        assert "learning rate" in metrics["grid_edge"] and f"note: {metrics['grid_edge']}" in printed
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"{method} baseline: digits" in shown
    assert ("note       the chosen cell is at" in shown) == (method != "knn")
    assert main(["eval", str(out)]) == 2
    assert "--model" in capsys.readouterr().err


@pytest.mark.slow
def test_run_command_runs_a_baseline_method(tmp_path, capsys):
    out = tmp_path / "knn"
    assert main(["run", "-o", str(out), *sets(*QUICK, "method=knn", "baseline.sets=2")]) == 0
    assert json.loads((out / "metrics.json").read_text())["method"] == "knn"
    out = tmp_path / "average"
    assert main(["run", "-o", str(out), *sets(*QUICK, "method=average_real", "baseline.lrs=[0.1,0.3]", "baseline.epochs=[1]",
                                              "baseline.search_models=2", "baseline.search_samples=200")]) == 0
    assert "note: the chosen cell is at the" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "kmeens"], "did you mean 'kmeans'"),
        (["--method", "kmeans", "--set", "synthetic.n=15", "--set", "synthetic.steps=1"], "multiple"),
        (["--method", "knn", "--set", "baseline.memory=average"], "baseline.memory"),
    ],
)
def test_baseline_user_errors(argv, message, tmp_path, capsys):
    assert main(["baseline", "experiments/digits.yaml", "-o", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err
