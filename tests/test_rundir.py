"""The run directory: what counts as a run, --resume / --overwrite, the log's last row."""

import pytest
import torch

from distill.errors import UserError
from distill.rundir import LOG_FIELDS, RunDir


@pytest.mark.parametrize("artefact", ["config.yaml", "metrics.json", "distilled.pt", "grid.png", "log.csv", "memory"])
def test_a_directory_holding_any_run_file_is_refused_without_resume_or_overwrite(tmp_path, artefact):
    (tmp_path / artefact).mkdir() if artefact == "memory" else (tmp_path / artefact).write_text("x")
    with pytest.raises(UserError, match=f"already holds .*--overwrite.*{artefact}"):
        RunDir(tmp_path).claim()
    RunDir(tmp_path).claim(overwrite=True)


def test_an_empty_or_foreign_directory_is_fine(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    RunDir(tmp_path).claim()
    RunDir(tmp_path / "new" / "deeper").claim()


def test_resume_and_overwrite_exclude_each_other_and_resume_needs_a_config(tmp_path):
    with pytest.raises(UserError, match="choose one"):
        RunDir(tmp_path).claim(resume=True, overwrite=True)
    with pytest.raises(UserError, match="not a run directory"):
        RunDir(tmp_path).claim(resume=True)


def test_overwrite_removes_only_run_files_and_leftover_temporaries(tmp_path):
    for name in ("config.yaml", "metrics.json", "notes.txt", ".distilled.pt.tmp-abc123.pt", ".mine.txt.tmp-1"):
        (tmp_path / name).write_text("x")
    (tmp_path / "memory" / "task_01").mkdir(parents=True)
    RunDir(tmp_path).create(overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mine.txt.tmp-1", "notes.txt"]


def test_a_file_as_out_and_an_unwritable_folder_are_refused(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        RunDir(tmp_path / "file").claim()
    monkeypatch.setattr("distill.files.os.access", lambda path, mode: False)  # as for a user without write permission
    with pytest.raises(UserError, match=f"cannot write to {tmp_path}: permission denied"):
        RunDir(tmp_path / "run" / "deeper").claim()


def test_a_log_row_cut_off_by_a_kill_is_dropped_and_other_damage_is_named(tmp_path):
    run = RunDir(tmp_path)
    run.start_log()
    row = dict.fromkeys(LOG_FIELDS, "1")
    run.append_log(row)
    run.append_log({**row, "iteration": 2})
    with open(run.log, "a") as f:
        f.write("3,0.1,0.5")  # no line end: the process died while appending
    assert [r["iteration"] for r in run.read_log()] == ["1", "2"]
    run.start_log(keep_until=2)
    assert run.log.read_text().endswith("\n") and len(run.read_log()) == 2
    with open(run.log, "a") as f:
        f.write("oops,,,\n")
    with pytest.raises(UserError, match="log.csv is corrupt at line 4"):
        run.read_log()


def test_metrics_without_the_expected_keys_are_named(tmp_path):
    run = RunDir(tmp_path)
    run.metrics.write_text('{"method": "distill"}')
    with pytest.raises(UserError, match="lacks test_acc"):
        run.read_metrics(("method", "test_acc"))
    run.metrics.write_text("[1, 2]")
    with pytest.raises(UserError, match="not a mapping"):
        run.read_metrics()


def test_a_corrupt_checkpoint_says_how_to_start_again(tmp_path):
    run = RunDir(tmp_path)
    run.checkpoint.write_bytes(b"\x80garbage")
    with pytest.raises(UserError, match=r"corrupt.*--overwrite$"):
        run.load_checkpoint()
    torch.save({"iteration": 1}, run.checkpoint)
    with pytest.raises(UserError, match="lacks data, optimizer"):
        run.load_checkpoint()
    assert run.checkpointed_iteration() == 1


def test_a_follower_reads_what_rank_0_wrote_and_writes_nothing(tmp_path):
    from distill.rundir import FollowerRun

    main = RunDir(tmp_path / "run")
    main.create()
    main.write_config({"method": "distill"})
    main.start_log(fields=("iteration", "loss", "seconds"))
    main.append_log({"iteration": 1, "loss": 0.5, "seconds": 1.0})
    before = {p.name: p.read_bytes() for p in main.path.iterdir()}
    follower = FollowerRun(main.path)
    follower.claim(resume=True)
    follower.create(overwrite=True)
    follower.write_config({"method": "other"})
    follower.start_log()
    follower.append_log({"iteration": 2, "loss": 0.4, "seconds": 2.0})
    follower.write_metrics({"test_acc": 1.0})
    follower.write_checkpoint({"iteration": 2})
    follower.keep_best({"x": torch.ones(2)})
    assert {p.name: p.read_bytes() for p in main.path.iterdir()} == before
    assert follower.read_config() == {"method": "distill"} and len(follower.read_log()) == 1
    assert torch.equal(follower.load_best()["x"], torch.ones(2)), "the kept data stays in memory"
