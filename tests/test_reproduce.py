"""benchmarks/reproduce.py: reuse of finished run directories, the rows file, and report rows."""

import importlib.util
from pathlib import Path

import pytest

from distill.config import load_config
from distill.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finished_run(path: Path, config, acc=0.9, **metrics) -> RunDir:
    run = RunDir(path)
    run.create()
    run.write_config(config.model_dump(mode="json"))
    run.write_metrics({"method": config.method, "test_acc": {"mean": acc, "std": 0.01, "n": 200}, "seconds": 12.0, **metrics})
    return run


def test_a_finished_run_is_reused_whatever_its_data_root(reproduce, tmp_path):
    config = load_config(None, ["dataset.root=/somewhere/data"])
    run = finished_run(tmp_path / "r", config)
    assert reproduce.same_run(run, load_config(None, ["dataset.root=../shared/data"]))
    assert not reproduce.same_run(run, load_config(None, ["synthetic.n=20", "synthetic.steps=2"]))
    run.metrics.unlink()
    assert not reproduce.same_run(run, config)  # unfinished


def test_every_row_names_an_experiment_and_a_known_method(reproduce):
    rows = reproduce.load_rows()
    assert len({r["name"] for r in rows}) == len(rows)
    for row in rows:
        config = load_config(ROOT / row["experiment"], [f"method={row['method']}", *row.get("set", [])])
        assert config.method == row["method"]
        assert "source" in row.get("paper", {"source": ""})


def test_report_row_gives_ours_paper_and_difference(reproduce, tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "RUNS", tmp_path)
    config = load_config(None, ["method=random_real"])
    finished_run(tmp_path / "b", config, acc=0.667, lr=0.1, epochs=5, device="cpu")
    row = {"name": "b", "what": "random real", "experiment": "experiments/digits.yaml", "method": "random_real",
           "paper": {"acc": 68.6, "std": 9.8, "checked": False, "source": "Table 1"}}
    line = reproduce.report_row(row)
    assert "| 66.70 ± 1.00 (n=200) | 68.6 ± 9.8 † | -1.90 | lr 0.1, 5 ep. | 12 s | cpu | Table 1 |" in line
    assert "not run" in reproduce.report_row({**row, "name": "missing"})


def test_continual_row_gives_acc_against_the_paper_and_the_transfers(reproduce, tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "RUNS", tmp_path)
    config = load_config(None, ["method=continual"])
    run = finished_run(tmp_path / "g", config, acc=0.687)
    run.write_metrics({**run.read_metrics(), "acc": 0.687, "bwt": -0.1257, "fwt": 0.0259})
    row = {"name": "g", "what": "GEM", "experiment": "experiments/digits.yaml", "method": "continual",
           "paper": {"acc": 67.4, "source": "Table 4"}}
    assert reproduce.continual_row(row) == "| g | GEM | 68.70 | 67.4 | +1.30 | -12.57 | +2.59 | 12 s | Table 4 |"
    assert "not run" in reproduce.continual_row({**row, "name": "missing"})


def test_a_final_figure_row_reports_the_last_logged_test_accuracy_of_the_run_it_names(reproduce, tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "RUNS", tmp_path)
    config = load_config(None, ["init.kind=fixed", "eval.every=2", "eval.select=best_train"])
    run = finished_run(tmp_path / "d", config, acc=0.95, iterations=4, selected={"iteration": 2})
    run.log.write_text("iteration,loss,seconds,test_acc\n2,0.5,1,0.95\n3,0.4,2,\n4,0.3,3,0.9312\n")
    row = {"name": "d_final", "run": "d", "what": "final", "experiment": "experiments/digits.yaml", "method": "distill",
           "figure": "final", "paper": {"acc": 96.0, "source": "T3"}}
    monkeypatch.setattr(reproduce, "full_iterations", lambda row: 4)
    line = reproduce.report_row(row)
    assert "| d_final | final | 93.12 (n=1) | 96.0 | -2.88 | 4; the data at the end |" in line
    chosen = reproduce.report_row({**row, "name": "d", "figure": None})
    assert "| 95.00 ± 1.00 (n=200) |" in chosen and "the data of iteration 2, best on training samples" in chosen


def test_an_unfinished_run_is_reported_with_its_checkpoints_iteration_and_how_to_continue(reproduce, tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "RUNS", tmp_path)
    config = load_config(None, ["dataset.name=mnist", "outer.epochs=2", "outer.batch_size=1000"])
    run = RunDir(tmp_path / "u")
    run.create()
    run.write_config(config.model_dump(mode="json"))
    run.write_checkpoint({"iteration": 37})
    row = {"name": "u", "what": "unfinished", "experiment": "experiments/digits.yaml", "method": "distill",
           "paper": {"acc": 90.0, "source": "T1"}}
    line = reproduce.report_row(row)
    assert f"| unfinished: iteration 37 of 120; continue with `distill run -o {run.path} --resume` | 90.0 |" in line
    assert "| stopped: diverged | 90.0 |" in reproduce.report_row({**row, "stopped": "diverged"})
    run.write_config(load_config(None, ["method=kip", "kip.steps=500"]).model_dump(mode="json"))
    assert "| unfinished: iteration 37 of 500; continue" in reproduce.kernel_row({**row, "method": "kip"})


def test_a_kernel_row_adds_the_krr_accuracy_re_measured_with_the_widest_kernel(reproduce, tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "RUNS", tmp_path)
    run = RunDir(tmp_path / "k")
    run.create()
    run.write_config(load_config(None, ["method=kip", "kernel.name=convnet_rf", "kernel.kind=nngp", "kernel.networks=4"])
                     .model_dump(mode="json"))
    accuracy = {"mean": 0.5283, "std": 0.0, "n": 1}
    transfer = {"mean": 0.5296, "std": 0.0007, "n": 2}
    metrics = {"method": "kip", "krr_acc": accuracy, "transfer_acc": transfer, "kernel_networks": 4, "steps": 300,
               "seconds": 900.0, "eval_seconds": 47.0, "threads": 1, "targets_seen": 150000}
    run.write_metrics(metrics)
    row = {"name": "k", "what": "KIP RF", "experiment": "experiments/digits.yaml", "method": "kip",
           "paper": {"acc": 75.6, "source": "T1"}}
    assert "| k | KIP RF | 52.83 | 75.6 | -22.77 |" in reproduce.kernel_row(row)
    at = lambda networks, acc: {"models": 1, "krr_acc": {"mean": acc, "std": 0.0, "n": 1}, "transfer_acc": transfer,
                                "kernel_networks": networks}
    run.write_metrics({**metrics, "evaluations": [at(32, 0.5679), at(128, 0.5772), at(4, 0.5283), at(128, 0.5701)]})
    assert "| k | KIP RF | 52.83 (57.72 with a 128-network eval kernel) | 75.6 | -22.77 |" in reproduce.kernel_row(row)


def test_the_full_data_table_reads_distill_trains_cache_against_the_papers_figure(reproduce, tmp_path):
    cache = tmp_path / "full_data.json"
    cache.write_text('{"mnist/lenet/0": {"test_acc": 0.9851, "settings": {"lr": 0.001, "epochs": 5, "batch_size": 128}, "seconds": 60.5},'
                     ' "cifar10/lenet/0": {"test_acc": 0.6, "settings": {"lr": 0.001, "epochs": 30, "batch_size": 128,'
                     ' "augment": ["flip", "crop"], "decay_epochs": 10, "decay_factor": 0.1}, "seconds": 3000}}')
    entries = [{"key": "mnist/lenet/0", "what": "LeNet", "paper": {"acc": 99, "source": "Sec. 4.1"}},
               {"key": "cifar10/alexcifarnet/0", "what": "AlexCifarNet"}, {"key": "cifar10/lenet/0", "what": "LeNet"}]
    assert reproduce.full_data_rows(entries, cache) == [
        "| mnist/lenet/0 | LeNet | 98.51 | 99 | -0.49 | Adam 0.001, 5 epochs of batches of 128 | 60 s | Sec. 4.1 |",
        "| cifar10/alexcifarnet/0 | AlexCifarNet | not run | — | — | — | — |  |",
        "| cifar10/lenet/0 | LeNet | 60.00 | — | — | Adam 0.001 (x0.1 every 10 epochs), 30 epochs of batches of 128, flip+crop | 3,000 s |  |",
    ]
    listed = reproduce.load_full_data_entries()
    assert listed and all({"key", "what"} <= entry.keys() and entry["key"].count("/") == 2 for entry in listed)


def test_an_interrupted_row_stops_the_script_with_code_130_and_the_report_rewritten(reproduce, monkeypatch, capsys):
    import signal

    def interrupted(row, args):
        raise KeyboardInterrupt

    written = []
    monkeypatch.setattr(reproduce, "run_row", interrupted)
    monkeypatch.setattr(reproduce, "write_report", lambda rows, **kw: written.append(len(rows)))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        first = reproduce.load_rows()[0]["name"]
        assert reproduce.main(["--rows", first]) == 130
        assert signal.getsignal(signal.SIGTERM) is reproduce.interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert written and "interrupted; its run keeps the last checkpoint" in capsys.readouterr().err
