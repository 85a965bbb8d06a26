"""``eval.select: best_train``: the run ends with the data of its best periodic evaluation
on training samples, and resumes to the same choice."""

import csv
import json

import pytest
import torch

from distill import distiller
from distill.config import load_config
from distill.errors import UserError
from distill.evaluate import evaluate
from distill.build import build, sampler_of
from distill.experiment import run_experiment, summarize_run
from distill.rundir import RunDir
from distill.synthetic import DistilledData

SELECT = ["eval.every=1", "eval.select=best_train", "eval.select_samples=300"]


def log_of(out):
    return list(csv.DictReader(open(out / "log.csv")))


def test_selection_needs_periodic_evaluations():
    with pytest.raises(UserError, match="set eval.every > 0"):
        load_config(None, ["eval.select=best_train"])


def test_the_run_ends_with_the_data_of_its_best_scoring_evaluation(quick_config, tmp_path, monkeypatch):
    """Scores forced to peak at iteration 2 of 6: distilled.pt must be the data a 2-iteration
    run of the same schedule ends with, and the metrics name iteration 2."""
    scores = iter([0.2, 0.7, 0.5, 0.7, 0.1, 0.3])
    monkeypatch.setattr(distiller.BestOnTrain, "score", lambda self, net, trained, batch_size: next(scores))
    metrics = run_experiment(quick_config(*SELECT), tmp_path / "selected")
    monkeypatch.undo()
    assert [float(r["select_acc"]) for r in log_of(tmp_path / "selected") if r["select_acc"]] == [0.2, 0.7, 0.5, 0.7, 0.1, 0.3]
    assert metrics["iterations"] == 6
    assert metrics["selected"]["iteration"] == 2 and metrics["selected"]["select_acc"] == 0.7

    run_experiment(quick_config("outer.epochs=2"), tmp_path / "two")
    selected = DistilledData.load(tmp_path / "selected" / "distilled.pt")
    two = DistilledData.load(tmp_path / "two" / "distilled.pt")
    assert torch.equal(selected.x, two.x) and torch.equal(selected.raw_lrs, two.raw_lrs)
    assert metrics["test_acc"]["mean"] == pytest.approx(float(log_of(tmp_path / "selected")[1]["test_acc"]), abs=1e-5)
    assert "the data of iteration 2 of 6" in summarize_run(tmp_path / "selected")


def test_the_score_is_the_accuracy_on_training_samples(quick_config, tmp_path):
    """With every training sample selected, the logged score is the trained network's
    accuracy on the whole training split (the test split is logged separately)."""
    config = quick_config("eval.every=6", "eval.select=best_train", "eval.select_samples=100000")
    metrics = run_experiment(config, tmp_path)
    row = log_of(tmp_path)[-1]
    setup = build(config)
    theta0 = sampler_of(setup, RunDir(tmp_path).load_checkpoint()["sampler"]).held_out(1)
    data = DistilledData.load(tmp_path / "distilled.pt")
    on_train = evaluate(setup.net, data, theta0, setup.real.train_x, setup.real.train_y).test_acc.mean
    assert float(row["select_acc"]) == pytest.approx(on_train, abs=1e-5)
    assert float(row["test_acc"]) == pytest.approx(metrics["test_acc"]["mean"], abs=1e-5)
    assert float(row["select_acc"]) != float(row["test_acc"])


def test_an_interrupted_selecting_run_resumes_to_the_same_choice(quick_config, tmp_path, monkeypatch):
    """The best score (iteration 2) comes before the interruption at 4 and is matched, not
    beaten, at 5: the resumed run must know it from its log and keep iteration 2."""

    def forced_scores():
        scores = iter([0.2, 0.7, 0.5, 0.6, 0.7, 0.3])
        return lambda self, net, trained, batch_size: next(scores)

    config = quick_config(*SELECT)
    monkeypatch.setattr(distiller.BestOnTrain, "score", forced_scores())
    whole = run_experiment(config, tmp_path / "whole")

    def interrupt(done):
        if done == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(distiller.BestOnTrain, "score", forced_scores())
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "split", on_iteration=interrupt)
    split = run_experiment(config, tmp_path / "split", resume=True)
    assert split["selected"] == whole["selected"] and whole["selected"]["iteration"] == 2
    a, b = (DistilledData.load(tmp_path / run / "distilled.pt") for run in ("whole", "split"))
    assert torch.equal(a.x, b.x) and torch.equal(a.raw_lrs, b.raw_lrs)
    assert json.loads((tmp_path / "split" / "metrics.json").read_text())["test_acc"] == whole["test_acc"]
