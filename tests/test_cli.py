"""The command line: exit codes, messages, and the commands on a quick digits run."""

import json
import subprocess
import sys

import pytest

from distill.cli import main

from conftest import QUICK


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def test_run_show_eval(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["run", "-o", out, *sets(*QUICK, "init.kind=random")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["show", out]) == 0
    assert "digits, mlp, random init" in capsys.readouterr().out
    assert main(["eval", out, "--models", "3"]) == 0
    assert "n=3" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_without_config_uses_the_runs_own(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["run", "-o", out, *sets(*QUICK)]) == 0
    assert main(["run", "-o", out, "--resume"]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["iterations"] == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--set", "synthetic.stpes=3"], "did you mean 'synthetic.steps'"),
        (["run", "--set", "synthetic.steps=-2"], "synthetic.steps"),
        (["run", "--set", "dataset.name=mnsit"], "did you mean 'mnist'"),
        (["run", "--set", "dataset.name=mnist", "--set", "dataset.root=/nonexistent"], "dataset.download: true"),
        (["run", "--set", "model.name=lenett"], "did you mean 'lenet'"),
        (["run", "missing.yaml"], "cannot read config"),
        (["show", "/nonexistent/run"], "not a run directory"),
        (["eval", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_user_errors_exit_2_with_a_clear_message(argv, message, tmp_path, capsys):
    assert main([*argv, "-o", str(tmp_path / "o")] if argv[0] == "run" else argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_divergence_exits_1(tmp_path, capsys):
    code = main(["run", "-o", str(tmp_path), *sets(*QUICK, "synthetic.lr_init=1e6")])
    assert code == 1
    assert "diverged" in capsys.readouterr().err


def test_console_entry_point_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "distill", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "run" in result.stdout


def test_pretrain_then_adapt_and_a_mismatched_pool_exits_2(tmp_path, capsys):
    config = tmp_path / "adapt.yaml"
    config.write_text(
        "model: {name: mlp, hidden: [8]}\n"
        f"init: {{kind: pretrained_random, pool: {tmp_path / 'pool.pt'}, train_networks: 2}}\n"
        "pretrain: {dataset: {name: digits, resize: 6}, networks: 3, epochs: 1, lr: 0.01}\n"
    )
    assert main(["pretrain", str(config), *sets("run.progress=false")]) == 0
    assert "3 networks pretrained on digits" in capsys.readouterr().out
    assert main(["pretrain", str(config)]) == 2
    assert "already exists" in capsys.readouterr().err
    code = main(["run", str(config), "-o", str(tmp_path / "run"), *sets(*QUICK[2:], "model.hidden=[8]")])
    err = capsys.readouterr().err
    assert code == 2 and "on 1x6x6 inputs" in err and "on 1x8x8 inputs" in err and "Traceback" not in err
