"""End to end on digits: the run directory, resume, divergence, evaluation, the summary."""

import csv
import json

import pytest
import torch

from distill import distiller
from distill.unroll import hypergradient
from distill.errors import DivergenceError, UserError
from distill.experiment import evaluate_run, run_experiment, summarize_run
from distill.seeds import Stream, generator
from distill.synthetic import DistilledData

CONTRACT_KEYS = {"method", "dataset", "model", "init", "n_distilled", "steps", "epochs", "test_acc", "seconds"}


def test_run_directory_contract(quick_config, tmp_path):
    out = tmp_path / "run"
    metrics = run_experiment(quick_config(), out)
    for name in ("config.yaml", "checkpoint.pt", "distilled.pt", "log.csv", "metrics.json", "grid.png"):
        assert (out / name).exists(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert CONTRACT_KEYS <= set(saved)
    assert set(saved["test_acc"]) == {"mean", "std", "n"} and saved["test_acc"]["n"] == 1
    assert saved["n_distilled"] == 20 and saved["steps"] == 2 and saved["epochs"] == 2
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6]
    assert list(rows[0]) == ["iteration", "epoch", "loss", "lr_min", "lr_mean", "lr_max", "outer_lr", "grad_norm_max", "seconds", "test_acc", "select_acc"]
    assert all(float(r["grad_norm_max"]) > 0 for r in rows)
    torch.load(out / "checkpoint.pt", weights_only=True)
    torch.load(out / "distilled.pt", weights_only=True)


def test_distillation_learns_on_digits(quick_config, tmp_path):
    """From N(0, 1) noise, a short run must learn data that trains the network far above chance."""
    config = quick_config("synthetic.data_init=normal", "outer.epochs=40", "outer.decay_epochs=40", "outer.lr=0.05")
    metrics = run_experiment(config, tmp_path)
    losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "log.csv"))]
    assert losses[-1] < 0.5 * losses[0]  # observed ratio 0.32-0.37 over seeds 0-3
    assert metrics["test_acc"]["mean"] > 0.55  # observed 0.74-0.83 over seeds 0-3; chance 10%, before 0.06-0.12


def test_interrupted_and_resumed_run_equals_uninterrupted_run(quick_config, tmp_path):
    config = quick_config("init.kind=random", "outer.models_per_iteration=2")
    run_experiment(config, tmp_path / "whole")

    def interrupt(done):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "split", on_iteration=interrupt)
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["iteration"] == 4
    run_experiment(config, tmp_path / "split", resume=True)

    whole = DistilledData.load(tmp_path / "whole" / "distilled.pt")
    split = DistilledData.load(tmp_path / "split" / "distilled.pt")
    assert torch.equal(whole.x, split.x) and torch.equal(whole.raw_lrs, split.raw_lrs)
    log = [int(r["iteration"]) for r in csv.DictReader(open(tmp_path / "split" / "log.csv"))]
    assert log == [2, 4, 6]


def test_divergence_stops_with_the_iteration_and_keeps_the_last_good_state(quick_config, tmp_path, monkeypatch):
    calls = []

    def nan_at_third_call(*args, **kwargs):
        calls.append(1)
        result = hypergradient(*args, **kwargs)
        if len(calls) == 3:
            result.x[0].view(-1)[0] = float("nan")
        return result

    monkeypatch.setattr(distiller, "hypergradient", nan_at_third_call)
    with pytest.raises(DivergenceError, match=r"at iteration 3;.*iteration 2"):
        run_experiment(quick_config("run.checkpoint_every=10"), tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["iteration"] == 2 and torch.isfinite(saved["data"]["x"]).all()
    assert not (tmp_path / "metrics.json").exists()
    monkeypatch.undo()
    run_experiment(quick_config("run.checkpoint_every=10"), tmp_path, resume=True)
    assert (tmp_path / "metrics.json").exists()


def test_divergent_learning_rates_stop_at_the_first_iteration(quick_config, tmp_path):
    with pytest.raises(DivergenceError, match="at iteration 1;"):
        run_experiment(quick_config("synthetic.lr_init=1e6"), tmp_path)


def test_resume_needs_a_checkpoint_and_the_same_config(quick_config, tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        run_experiment(quick_config(), tmp_path / "none", resume=True)
    run_experiment(quick_config(), tmp_path / "r")
    with pytest.raises(UserError, match="different config"):
        run_experiment(quick_config("outer.lr=0.5"), tmp_path / "r", resume=True)
    with pytest.raises(UserError, match="already holds a finished run; pass --overwrite"):
        run_experiment(quick_config(), tmp_path / "r")
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt"):
        run_experiment(quick_config(), tmp_path / "r", resume=True)


def test_too_few_samples_for_hard_labels(quick_config, tmp_path):
    with pytest.raises(UserError, match="fewer than the 10 classes"):
        run_experiment(quick_config("synthetic.n=4", "synthetic.steps=1"), tmp_path)


def test_eval_and_show(quick_config, tmp_path):
    run_experiment(quick_config("init.kind=random"), tmp_path)
    evaluation = evaluate_run(tmp_path, models=6)
    assert evaluation.test_acc.n == 6 and 0 <= evaluation.test_acc.mean <= 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["evaluations"][0]["models"] == 6
    summary = summarize_run(tmp_path)
    assert "digits" in summary and "random init" in summary and "6 networks" in summary


def test_learned_soft_labels_with_fewer_samples_than_classes(quick_config, tmp_path):
    config = quick_config("synthetic.labels=learned", "synthetic.n=5", "synthetic.steps=1", "outer.lr=0.05")
    metrics = run_experiment(config, tmp_path / "soft")
    data = DistilledData.load(tmp_path / "soft" / "distilled.pt")
    assert data.labels.shape == (1, 5, 10) and data.labels.is_floating_point()
    initial = torch.nn.functional.one_hot(torch.arange(5), 10).float()
    assert not torch.allclose(data.labels[0], initial)
    rows = list(csv.reader(open(tmp_path / "soft" / "labels.csv")))
    assert rows[0] == ["step", "index", *map(str, range(10))] and len(rows) == 6
    assert metrics["n_distilled"] == 5

    again = quick_config("synthetic.labels=learned", "synthetic.n=5", "synthetic.steps=1", "synthetic.label_init=file",
                         f"synthetic.label_file={tmp_path / 'soft' / 'labels.csv'}", "synthetic.freeze_data=true",
                         "synthetic.data_init=normal", "outer.epochs=2")
    run_experiment(again, tmp_path / "labels_only")
    reread = DistilledData.load(tmp_path / "labels_only" / "distilled.pt")
    fresh = torch.randn(5, 1, 8, 8, generator=generator(0, Stream.DATA))
    assert torch.equal(reread.x.flatten(), fresh.flatten()), "freeze_data must leave the data as initialised"
    assert not torch.allclose(reread.labels, data.labels, atol=1e-4), "labels keep learning from the file's values"
    assert torch.allclose(reread.labels, data.labels, atol=0.2)


def test_pretrained_random_trains_on_the_pool_and_evaluates_its_held_out_networks(quick_config, tmp_path, digits_pool, monkeypatch):
    path, pool = digits_pool
    config = quick_config("init.kind=pretrained_random", f"init.pool={path}", "init.train_networks=3",
                          "outer.models_per_iteration=2", "eval.models=10")
    drawn = []

    def spy(net, theta0, *args, **kwargs):
        drawn.append(theta0.clone())
        return hypergradient(net, theta0, *args, **kwargs)

    monkeypatch.setattr(distiller, "hypergradient", spy)
    metrics = run_experiment(config, tmp_path)
    assert len(drawn) == 6
    assert all(any(torch.equal(row, t) for t in pool.thetas[:3]) for theta0 in drawn for row in theta0)
    assert metrics["test_acc"]["n"] == 2 and metrics["pool"] == str(path)
    # before training: the two held-out networks' own accuracy on the (here same) digits test split
    from distill.datasets import load_dataset
    from distill.evaluate import accuracies
    from distill.functional import FunctionalNet
    from distill.models import build_model

    data = load_dataset("digits")
    net = FunctionalNet.of(build_model("mlp", (1, 8, 8), 10, hidden=[32]))
    expected = accuracies(net, pool.thetas[3:], data.test_x, data.test_y, 2048)
    assert metrics["before_acc"]["mean"] == pytest.approx(expected.mean().item())
    assert metrics["before_acc"]["mean"] == pytest.approx(pool.test_acc[3:].mean().item())
    again = evaluate_run(tmp_path, models=1)  # distill eval: the first held-out network only
    assert again.before.n == 1 and again.before.mean == pytest.approx(expected[0].item())


def test_a_pool_for_another_model_is_rejected_naming_both(quick_config, tmp_path, digits_pool):
    path, _ = digits_pool
    config = quick_config("model.hidden=[16]", "init.kind=pretrained_random", f"init.pool={path}", "init.train_networks=3")
    with pytest.raises(UserError, match=r"holds mlp\(hidden=\[32\]\) for 10 classes.*this run builds mlp\(hidden=\[16\]\)"):
        run_experiment(config, tmp_path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["init.train_networks=5"], "leaves no held-out network"),
        (["init.train_networks=2", "outer.models_per_iteration=3"], "more than the 2 training networks"),
    ],
)
def test_impossible_pool_splits(quick_config, tmp_path, digits_pool, overrides, message):
    path, _ = digits_pool
    config = quick_config("init.kind=pretrained_random", f"init.pool={path}", *overrides)
    with pytest.raises(UserError, match=message):
        run_experiment(config, tmp_path)


def test_pretrained_fixed_network_out_of_range(quick_config, tmp_path, digits_pool):
    path, _ = digits_pool
    with pytest.raises(UserError, match="init.network = 7, but the pool .* holds 5 networks"):
        run_experiment(quick_config("init.kind=pretrained_fixed", f"init.pool={path}", "init.network=7"), tmp_path)


def test_pretrained_fixed_starts_from_the_chosen_pool_network(quick_config, tmp_path, digits_pool):
    path, pool = digits_pool
    metrics = run_experiment(quick_config("init.kind=pretrained_fixed", f"init.pool={path}", "init.network=4"), tmp_path)
    assert metrics["test_acc"]["n"] == 1
    assert metrics["before_acc"]["mean"] == pytest.approx(pool.test_acc[4].item())
    assert torch.equal(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["sampler"]["theta"], pool.thetas[4])


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_resnet18_distills_and_evaluates_end_to_end(quick_config, tmp_path, norm):
    """A narrow resnet18 through a whole run (the held-out evaluation vmaps it without autograd)."""
    from conftest import QUICK
    from distill.config import load_config

    config = load_config(None, [o for o in QUICK if not o.startswith("model.")] + [
        "model.name=resnet18", "model.width=4", "model.groups=2", f"model.norm={norm}",
        "init.kind=random", "outer.epochs=2", "eval.models=2"])
    metrics = run_experiment(config, tmp_path)
    assert metrics["test_acc"]["n"] == 2 and metrics["iterations"] == 2
