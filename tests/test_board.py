"""TensorBoard (distill.board): a tiny run's event file holds the log's scalars at their
iterations and the grid as an image, read back with tensorboard's own event reader."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from distill.board import Board, board_folder
from distill.cli import main
from distill.errors import UserError
from distill.experiment import run_experiment
from distill.rundir import RunDir

from conftest import QUICK


def events(folder) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def sets(*overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.mark.slow
def test_a_tiny_run_writes_the_scalars_of_its_log_and_its_grid(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "-o", str(out), *sets(*QUICK, "run.tensorboard=true", "eval.every=3")]) == 0
    log = RunDir(out).read_log()
    board = events(out / "tensorboard")
    for name in ("loss", "lr_min", "lr_mean", "lr_max", "grad_norm_max", "test_acc"):
        logged = [(int(r["iteration"]), float(r[name])) for r in log if r[name]]
        assert [(e.step, e.value) for e in board.Scalars(name)] == [(i, pytest.approx(v)) for i, v in logged], name
    assert "seconds" not in board.Tags()["scalars"] and "epoch" not in board.Tags()["scalars"]
    assert {"grid", "curves"} <= set(board.Tags()["images"])
    assert board.Images("grid")[0].step == int(log[-1]["iteration"])


@pytest.mark.slow
def test_tensorboard_dir_given_to_an_interrupted_and_resumed_run(tmp_path, quick_config):
    out, folder, config = tmp_path / "run", tmp_path / "tb", quick_config()

    def stop(done):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, out, tensorboard=folder, on_iteration=stop)
    run_experiment(config, out, resume=True, tensorboard=folder)
    assert not (out / "tensorboard").exists()
    assert [e.step for e in events(folder).Scalars("loss")] == [2, 4, 6]


def test_a_resumed_writer_hides_the_events_from_its_first_step_on(tmp_path):
    first = Board(tmp_path, purge_step=1)
    for i in (1, 2, 3, 4):
        first.add_row({"iteration": i, "loss": 1.0})
    first.close()
    resumed = Board(tmp_path, purge_step=3)  # a run resumed from iteration 2: its rows 3 and 4 are gone
    for i in (3, 4):
        resumed.add_row({"iteration": i, "loss": 2.0})
    resumed.close()
    assert [(e.step, e.value) for e in events(tmp_path).Scalars("loss")] == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)]


def test_the_folder_must_be_a_writable_folder_and_the_package_installed(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file; name a folder"):
        board_folder(tmp_path / "file")
    assert board_folder(tmp_path / "new") == tmp_path / "new"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install tensorboard"):
        board_folder(tmp_path / "new")


def test_a_board_writes_the_measurements_of_a_row(tmp_path):
    board = Board(tmp_path, purge_step=1)
    board.add_row({"iteration": 3, "loss": 0.5, "krr_acc": "", "targets": 300, "seconds": 1.0})
    board.close()
    accumulator = events(tmp_path)
    assert accumulator.Tags()["scalars"] == ["loss"]
    assert [(e.step, e.value) for e in accumulator.Scalars("loss")] == [(3, 0.5)]
