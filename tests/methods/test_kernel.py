"""``method: kip`` and ``method: label_solve`` through ``distill run``'s entry point on digits:
the run directory, metrics, resume, evaluation, and bad input as one-line errors."""

import json

import pytest
import torch

from distill.cli import main
from distill.config import load_config
from distill.experiment import evaluate_run, run_experiment, summarize_run
from distill.methods.kernel import kernel_setup
from distill.rundir import RunDir
from distill.support import SupportSet

TINY_KIP = [
    "method=kip",
    "model.name=mlp",
    "model.hidden=[32]",
    "kernel.depth=1",
    "synthetic.n=20",
    "kip.steps=6",
    "kip.target_batch=200",
    "kip.holdout=200",
    "kip.transfer.models=2",
    "kip.transfer.steps=20",
    "run.log_every=2",
    "run.checkpoint_every=3",
    "run.progress=false",
    "run.device=cpu",
]


def tiny(*overrides):
    return load_config(None, TINY_KIP + list(overrides))


def test_a_kip_run_writes_its_run_directory_and_metrics(tmp_path):
    metrics = run_experiment(tiny("synthetic.labels=learned"), tmp_path)
    run = RunDir(tmp_path)
    for name in ("config.yaml", "checkpoint.pt", "support.pt", "log.csv", "metrics.json", "grid.png"):
        assert (tmp_path / name).exists(), name
    on_disk = json.loads(run.metrics.read_text())
    assert on_disk == metrics
    assert metrics["test_acc"] == metrics["krr_acc"]
    assert metrics["transfer_acc"]["n"] == 2
    assert metrics["steps"] == 6 and metrics["n_distilled"] == 20
    assert 0.5 < metrics["krr_acc"]["mean"] <= 1  # 2 per class of digits, 6 steps
    support = SupportSet.load(run.support)
    assert support.learns_labels and support.x.shape == (20, 1, 8, 8)
    assert [r["iteration"] for r in run.read_log()] == ["2", "4", "6"]
    assert "KRR acc" in summarize_run(tmp_path) and "transfer" in summarize_run(tmp_path)


def test_kip_improves_the_krr_accuracy_of_its_real_initialisation(tmp_path):
    start = run_experiment(tiny("kip.steps=1"), tmp_path / "one", overwrite=True)
    learned = run_experiment(tiny("kip.steps=40", "kip.lr=0.02", "run.log_every=40"), tmp_path / "many")
    assert learned["krr_acc"]["mean"] > start["krr_acc"]["mean"] + 0.03


def test_a_kip_run_resumes_to_the_same_support_set(tmp_path):
    config = tiny()
    run_experiment(config, tmp_path / "whole")

    class Stop(Exception):
        pass

    def stop_after(done):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        run_experiment(config, tmp_path / "cut", on_iteration=stop_after)
    assert "restarts from step 3" in summarize_run(tmp_path / "cut")
    run_experiment(config, tmp_path / "cut", resume=True)
    whole, cut = SupportSet.load(tmp_path / "whole" / "support.pt"), SupportSet.load(tmp_path / "cut" / "support.pt")
    assert torch.equal(whole.x, cut.x) and torch.equal(whole.y, cut.y)


def test_label_solve_runs_and_its_labels_beat_the_one_hot_labels(tmp_path):
    solved = run_experiment(tiny("method=label_solve", "kip.block=300"), tmp_path / "ls")
    fixed = run_experiment(tiny("kip.steps=1", "kip.lr=1e-9"), tmp_path / "fixed")
    assert solved["krr_acc"]["mean"] > fixed["krr_acc"]["mean"]
    assert solved["steps"] is None
    assert "solved labels" in summarize_run(tmp_path / "ls")


def test_distill_eval_re_evaluates_a_kernel_run(tmp_path, capsys):
    metrics = run_experiment(tiny(), tmp_path)
    evaluation = evaluate_run(tmp_path, models=3)
    recorded = RunDir(tmp_path).read_metrics()["evaluations"][-1]
    assert recorded["krr_acc"] == metrics["krr_acc"] == evaluation.krr_acc.as_dict()
    assert recorded["transfer_acc"]["n"] == 3 == evaluation.transfer_acc.n
    assert "kernel_networks" not in recorded and recorded["seconds"] > 0  # an exact kernel
    assert main(["eval", str(tmp_path), "--models", "2"]) == 0
    assert f"KRR test accuracy {100 * metrics['krr_acc']['mean']:.2f}%\ntransfer: " in capsys.readouterr().out
    assert main(["eval", str(tmp_path), "--kernel-networks", "4"]) == 2
    assert "uses the exact fc kernel" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--model", "mlp"]) == 2
    assert "is a kip run: its support set is measured by KRR" in capsys.readouterr().err


def test_distill_run_prints_the_krr_and_transfer_accuracy_of_a_kernel_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "-o", str(out), *[a for o in TINY_KIP for a in ("--set", o)]]) == 0
    metrics = RunDir(out).read_metrics()
    krr, transfer = metrics["krr_acc"], metrics["transfer_acc"]
    assert (f"KRR test accuracy {100 * krr['mean']:.2f}%; transfer {100 * transfer['mean']:.2f}% ± "
            f"{100 * transfer['std']:.2f} over 2 mlp networks") in capsys.readouterr().out


RANDOM_FEATURES = ["kernel.name=convnet_rf", "kernel.kind=nngp", "kernel.depth=2", "kernel.width=8", "kernel.networks=2",
                   "kip.steps=2", "kip.transfer.models=1"]


def test_kernel_eval_networks_sets_the_draw_that_measures_a_random_feature_kernel_run(tmp_path, capsys):
    """The KRR accuracy of a ``convnet_rf`` run is measured with ``kernel.eval_networks``
    random networks, in the run or afterwards with ``distill eval --kernel-networks``: the
    same support set measured either way gives the same figure."""
    config = tiny(*RANDOM_FEATURES, "kernel.eval_networks=12")
    setup = kernel_setup(config)
    assert (setup.kernel.networks, setup.eval_kernel.networks) == (2, 12)
    wide = run_experiment(config, tmp_path / "wide")
    plain = run_experiment(tiny(*RANDOM_FEATURES), tmp_path / "plain")
    a, b = SupportSet.load(tmp_path / "wide" / "support.pt"), SupportSet.load(tmp_path / "plain" / "support.pt")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)  # eval_networks changes no KIP step
    # ... but the draw that measures it: 12 networks, both in the log and on the test split
    assert (wide["kernel_networks"], plain["kernel_networks"]) == (12, 2)
    assert wide["krr_acc"] != plain["krr_acc"]
    logged = [[row["krr_acc"] for row in RunDir(tmp_path / name).read_log()] for name in ("wide", "plain")]
    assert logged[0] != logged[1]
    assert main(["eval", str(tmp_path / "plain"), "--kernel-networks", "12", "--models", "1"]) == 0
    out = capsys.readouterr().out
    recorded = RunDir(tmp_path / "plain").read_metrics()["evaluations"][-1]
    assert recorded["kernel_networks"] == 12 and recorded["krr_acc"] == wide["krr_acc"]
    assert f"KRR test accuracy {100 * wide['krr_acc']['mean']:.2f}% (kernel of 12 random networks)" in out
    assert "(kernel of 12 random networks), 1 network: " in summarize_run(tmp_path / "plain")

    # Label Solve solves with the evaluation draw: eval_networks=12 is the solve of networks=12
    solve = ["method=label_solve", "kip.block=300"]
    run_experiment(tiny(*RANDOM_FEATURES, *solve, "kernel.eval_networks=12"), tmp_path / "ls")
    run_experiment(tiny(*RANDOM_FEATURES, *solve, "kernel.networks=12"), tmp_path / "ls12")
    assert torch.equal(SupportSet.load(tmp_path / "ls" / "support.pt").y, SupportSet.load(tmp_path / "ls12" / "support.pt").y)
    assert main(["eval", str(tmp_path / "ls"), "--kernel-networks", "12"]) == 2
    assert "its labels were solved with its own kernel draw" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    (["synthetic.n=15", "synthetic.steps=1"], "synthetic.n = 15 is not a multiple of the 10 classes"),
    (["kip.target_batch=5000"], "kip.target_batch = 5000 is larger than"),
    (["kernel.name=rbf"], "kernel.name"),
    (["kernel.kind=gp"], "kernel.kind"),
    (["kernel.depth=0"], "kernel.depth"),
    (["kip.reg=0"], "kip.reg"),
    (["kip.reg=-1"], "kip.reg"),
    (["kernel.eval_networks=4"], "eval_networks sets the random networks of kernel.name=convnet_rf"),
])
def test_bad_kernel_settings_are_one_line_errors_with_exit_code_2(tmp_path, capsys, overrides, message):
    args = ["run", "-o", str(tmp_path / "out")] + [a for o in TINY_KIP + overrides for a in ("--set", o)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "metrics.json").exists()



def test_augmenting_kip_targets_that_are_not_images_is_a_one_line_error(tmp_path, capsys):
    from methods.test_bilevel import write_corpus

    write_corpus(tmp_path)
    text = ["dataset.name=trec6", f"dataset.root={tmp_path}", "dataset.glove=glove.txt", "dataset.embed_dim=8",
            "dataset.max_len=10", "synthetic.n=12", "synthetic.steps=1", "kip.target_batch=60", "kip.holdout=20", "kip.augment=[flip]"]
    args = ["run", "-o", str(tmp_path / "out")] + [a for o in TINY_KIP + text for a in ("--set", o)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "kip.augment flips and crops images" in err and len(err.splitlines()) == 1
