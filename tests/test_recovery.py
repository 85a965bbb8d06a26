"""Nothing finished is lost: refused overwrites, self-contained run directories, divergence,
corrupt state and unwritable directories, end to end on the quick digits run."""

import json
import shutil

import pytest
import torch

from distill import distiller
from distill.cli import main
from distill.errors import DivergenceError, UserError
from distill.experiment import evaluate_run, run_experiment, summarize_run
from distill.rundir import RunDir

from conftest import QUICK


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished fixed-init quick run (copied by each test that changes it)."""
    from distill.config import load_config

    out = tmp_path_factory.mktemp("finished") / "run"
    run_experiment(load_config(None, QUICK), out)
    return out


def copy_of(finished, tmp_path):
    return shutil.copytree(finished, tmp_path / "run")


def test_a_finished_run_without_its_checkpoint_is_not_overwritten(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    (out / "checkpoint.pt").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["run", "-o", str(out), *sets(*QUICK)]) == 2
    err = capsys.readouterr().err
    assert "already holds a finished run; pass --overwrite" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_replaces_the_run_after_its_set_up_succeeded(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    assert main(["run", "-o", str(out), "--overwrite", *sets(*QUICK, "dataset.name=nosuch")]) == 2
    assert (out / "metrics.json").exists(), "a set-up that fails removes nothing"
    assert main(["run", "-o", str(out), "--overwrite", *sets(*QUICK, "outer.epochs=2")]) == 0
    assert json.loads((out / "metrics.json").read_text())["iterations"] == 2


def test_eval_works_from_the_run_directory_alone(finished, tmp_path):
    """Without checkpoint.pt the fixed weights come from init.pt; without both, from the seed."""
    out = copy_of(finished, tmp_path)
    reported = json.loads((out / "metrics.json").read_text())["test_acc"]["mean"]
    (out / "checkpoint.pt").unlink()
    assert evaluate_run(out).test_acc.mean == pytest.approx(reported, abs=1e-6)
    (out / "init.pt").unlink()
    assert evaluate_run(out).test_acc.mean == pytest.approx(reported, abs=1e-6)


def test_pretrained_fixed_data_is_evaluated_without_its_pool(quick_config, tmp_path, digits_pool):
    path, _ = digits_pool
    pool = tmp_path / "pool.pt"
    shutil.copy(path, pool)
    metrics = run_experiment(quick_config("init.kind=pretrained_fixed", f"init.pool={pool}", "init.network=1"), tmp_path / "run")
    pool.unlink()
    (tmp_path / "run" / "checkpoint.pt").unlink()
    assert evaluate_run(tmp_path / "run").test_acc.mean == pytest.approx(metrics["test_acc"]["mean"], abs=1e-6)


def test_only_finite_state_is_called_good(quick_config, tmp_path, monkeypatch):
    """An update that makes the data infinite (as an enormous lr does) is never checkpointed:
    the error names the last finite checkpoint, and it is the one on disk."""
    original = distiller.apply_gradients

    def blow_up(data, *args, **kwargs):
        norm = original(data, *args, **kwargs)
        with torch.no_grad():
            data.x.fill_(float("inf"))
        return norm

    monkeypatch.setattr(distiller, "apply_gradients", blow_up)
    with pytest.raises(DivergenceError, match=r"at iteration 2; the last good state \(iteration 0\)"):
        run_experiment(quick_config(), tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["iteration"] == 0 and torch.isfinite(saved["data"]["x"]).all()


def test_a_corrupt_checkpoint_points_to_a_way_out_that_works(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    (out / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes()[:100])
    assert main(["run", "-o", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    advice = err.strip().rsplit("start it again with: ", 1)[1]
    assert advice.startswith("distill run ") and advice.endswith("--overwrite")
    argv = advice.split()[1:]
    assert main(argv) == 0
    assert RunDir(out).load_checkpoint()["iteration"] == 6


def test_another_runs_checkpoint_on_resume_is_named(finished, quick_config, tmp_path):
    out = tmp_path / "small"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(quick_config("synthetic.n=10", "synthetic.steps=1"), out, on_iteration=interrupt_at(2))
    state = torch.load(finished / "checkpoint.pt", weights_only=True)
    del state["config"]  # as in checkpoints written before they recorded their config
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(UserError, match="does not belong to this run.*--overwrite"):
        run_experiment(quick_config("synthetic.n=10", "synthetic.steps=1"), out, resume=True)


def interrupt_at(iteration):
    def interrupt(done):
        if done == iteration:
            raise KeyboardInterrupt

    return interrupt


def test_a_corrupt_kept_best_is_named(quick_config, tmp_path, monkeypatch):
    config = quick_config("eval.every=2", "eval.select=best_train", "eval.models_during=1", "eval.select_samples=50")

    def corrupt_best(done):
        if done == 5:
            (tmp_path / "best.pt").write_bytes(b"broken")

    with pytest.raises(UserError, match="best.pt is corrupt"):
        run_experiment(config, tmp_path, on_iteration=corrupt_best)


def test_show_after_a_kill_gives_the_iteration_a_resume_restarts_from(quick_config, tmp_path):
    class Killed(Exception):
        """Stands for SIGKILL: nothing is saved on the way out."""

    def kill(done):
        if done == 5:
            raise Killed

    with pytest.raises(Killed):
        run_experiment(quick_config(), tmp_path, on_iteration=kill)
    summary = summarize_run(tmp_path)
    assert "progress   iteration 4" in summary and "--resume restarts from iteration 3" in summary


def test_eval_checks_it_can_record_before_the_work_and_never_loses_a_result(finished, tmp_path, monkeypatch, capsys):
    out = copy_of(finished, tmp_path)
    trained = []
    monkeypatch.setattr("distill.methods.bilevel.train_and_test", lambda *a, **k: trained.append(1))
    monkeypatch.setattr("distill.methods.bilevel.os.access", lambda path, mode: False)
    assert main(["eval", str(out)]) == 2
    assert "cannot record an evaluation" in capsys.readouterr().err and not trained
    monkeypatch.undo()

    def refuse(self, metrics):
        raise PermissionError(13, "Permission denied", str(self.metrics))

    monkeypatch.setattr(RunDir, "write_metrics", refuse)
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err
    assert "after training: " in err and "%" in err and "metrics.json: Permission denied" in err


@pytest.mark.parametrize("change, message", [
    (lambda s: {**s, "x": s["x"][..., :4, :]}, r"samples of shape \(1, 4, 8\)"),
    (lambda s: {**s, "labels": s["labels"] + 10}, "labels outside 0..9"),
    (lambda s: {**s, "num_classes": 3}, "3 classes"),
    (lambda s: {**s, "x": s["x"] * float("nan")}, "non-finite"),
    (lambda s: {k: v for k, v in s.items() if k != "raw_lrs"}, "not a distilled-data file"),
])
def test_eval_refuses_distilled_data_that_does_not_fit(finished, tmp_path, change, message):
    out = copy_of(finished, tmp_path)
    state = torch.load(out / "distilled.pt", weights_only=True)
    torch.save(change(state), out / "distilled.pt")
    with pytest.raises(UserError, match=message):
        evaluate_run(out)


def test_a_run_that_fails_in_its_set_up_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "-o", str(out), *sets(*QUICK, "dataset.name=mnist", f"dataset.root={tmp_path / 'none'}")]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_a_checkpoint_of_a_run_with_another_config_is_refused(quick_config, tmp_path):
    run_experiment(quick_config(), tmp_path / "a")
    run_experiment(quick_config("seed=1"), tmp_path / "b")
    shutil.copy(tmp_path / "b" / "checkpoint.pt", tmp_path / "a" / "checkpoint.pt")
    before = (tmp_path / "a" / "distilled.pt").read_bytes()
    with pytest.raises(UserError, match="written by a run of another config"):
        run_experiment(quick_config(), tmp_path / "a", resume=True)
    assert (tmp_path / "a" / "distilled.pt").read_bytes() == before


def test_a_finished_run_whose_log_was_lost_resumes_to_its_metrics(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    reported = json.loads((out / "metrics.json").read_text())
    (out / "log.csv").unlink()
    metrics = run_experiment(RunDirConfig(out), out, resume=True)
    assert metrics["iterations"] == reported["iterations"] and metrics["final_loss"] is None
    assert metrics["test_acc"] == reported["test_acc"]


def RunDirConfig(out):
    from distill.config import load_config

    return load_config(out / "config.yaml")


def test_diverged_full_data_training_is_not_cached(tmp_path, capsys):
    cache = tmp_path / "full.json"
    argv = ["train", "--set", "train.epochs=1", "--set", "train.lr=1e6", "--set", f"train.cache={cache}", "--set", "model.name=mlp",
            "--set", "model.hidden=[32]"]
    assert main(argv) == 1
    assert "full-data training diverged" in capsys.readouterr().err and not cache.exists()
