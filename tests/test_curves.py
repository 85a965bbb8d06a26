"""Training curves (distill.curves): the columns of any log grouped into panels, and the
pictures drawn from a distillation's, a kernel method's and several runs' logs."""

import pytest

from distill.curves import log_series, measurements, panels_of, plot_curves, plot_overlay
from distill.rundir import LOG_FIELDS


def distill_rows(count: int, every: int = 2) -> list[dict[str, str]]:
    """Rows as ``RunDir.read_log`` gives them: strings, with ``test_acc`` only every ``every``th row."""
    rows = []
    for i in range(1, count + 1):
        row = dict.fromkeys(LOG_FIELDS, "")
        row.update(iteration=str(10 * i), epoch=str(10 * i), loss=str(2 / i), lr_min="0.01", lr_mean=str(0.02 + i / 1000),
                   lr_max="0.05", outer_lr="0.02", grad_norm_max="0.3", seconds=str(i))
        if i % every == 0:
            row["test_acc"] = str(0.5 + i / 100)
        rows.append(row)
    return rows


KIP_ROWS = [{"iteration": str(i), "loss": str(1 / i), "krr_acc": str(0.3 + i / 50), "targets": str(100 * i), "seconds": str(i)}
            for i in range(1, 6)]


def test_measurements_leave_out_progress_counters_and_empty_cells():
    row = distill_rows(1)[0]
    assert set(measurements(row)) == {"loss", "lr_min", "lr_mean", "lr_max", "outer_lr", "grad_norm_max"}
    assert measurements({"iteration": 4, "loss": 0.5, "test_acc": None, "x": "nan"}) == {"loss": 0.5}
    series = log_series(distill_rows(4))
    assert series["test_acc"] == ([20.0, 40.0], [pytest.approx(0.52), pytest.approx(0.54)])
    assert series["loss"][0] == [10.0, 20.0, 30.0, 40.0]


def test_columns_are_grouped_by_name_and_any_other_column_gets_its_own_panel():
    distill_panels = panels_of(list(log_series(distill_rows(4))))
    assert [(p.title, cs) for p, cs in distill_panels] == [
        ("loss", ["loss"]), ("step sizes η", ["lr_min", "lr_mean", "lr_max"]), ("accuracy (%)", ["test_acc"]),
        ("gradient norm", ["grad_norm_max"]), ("outer_lr", ["outer_lr"])]
    kip_panels = panels_of(list(log_series(KIP_ROWS)))
    assert [(p.title, cs) for p, cs in kip_panels] == [("loss", ["loss"]), ("accuracy (%)", ["krr_acc"])]


@pytest.mark.parametrize("rows", [distill_rows(30), KIP_ROWS, []], ids=["distill", "kip", "empty"])
def test_curves_of_any_log_are_a_png(tmp_path, rows):
    path = tmp_path / "curves.png"
    plot_curves(rows, path, title="run")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"], "written atomically: no temporary file is left"


def test_curves_against_another_column_and_an_overlay_of_runs(tmp_path):
    rows = [{"task": str(k), "seen_tasks_acc": str(0.9 - k / 10), "all_tasks_acc": str(0.2 + k / 10)} for k in (1, 2, 3)]
    plot_curves(rows, tmp_path / "continual.png", x="task")
    plot_overlay({"a": distill_rows(10), "b": KIP_ROWS}, tmp_path / "overlay.svg")
    assert (tmp_path / "continual.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "overlay.svg").read_text().startswith("<?xml")
