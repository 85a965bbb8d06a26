"""A run directory that draws its log (distill.monitor): curves.png at most every
CURVES_EVERY seconds while rows arrive and at the end, nothing for a run that never started,
and `distill show` naming the file."""

import pytest

from distill import monitor
from distill.cli import main
from distill.monitor import MonitoredRun

from conftest import QUICK


def row(i: int) -> dict:
    return {"iteration": i, "epoch": i, "loss": 1 / i, "lr_min": 0.01, "lr_mean": 0.02, "lr_max": 0.03, "outer_lr": 0.02,
            "grad_norm_max": "0.1", "seconds": i, "test_acc": "", "select_acc": ""}


def test_rows_redraw_the_curves_at_most_every_few_seconds_and_close_draws_the_rest(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(monitor, "plot_curves", lambda rows, path, title: drawn.append(len(rows)))
    run = MonitoredRun(tmp_path)
    run.create()
    run.start_log()
    for i in (1, 2, 3):
        run.append_log(row(i))
    assert drawn == [], f"rows within {monitor.CURVES_EVERY} s of the start are not drawn one by one"
    monkeypatch.setattr(monitor, "CURVES_EVERY", 0.0)
    run.append_log(row(4))
    assert drawn == [4]
    run.close()
    assert drawn == [4], "nothing new to draw"
    monkeypatch.setattr(monitor, "CURVES_EVERY", 3600.0)
    run.append_log(row(5))
    assert drawn == [4]
    run.close()
    assert drawn == [4, 5]


def test_the_curves_are_a_picture_of_the_log_and_a_run_that_never_started_draws_nothing(tmp_path):
    run = MonitoredRun(tmp_path / "run")
    run.close()
    assert not (tmp_path / "run").exists(), "a run that fails in its set-up leaves no directory"
    run.create()
    run.start_log()
    run.append_log(row(1))
    run.close()
    assert run.curves.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_run_writes_its_curves_and_show_names_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "-o", str(out), *[a for o in QUICK for a in ("--set", o)]]) == 0
    assert (out / "curves.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    assert f"curves     {out / 'curves.png'}" in capsys.readouterr().out
