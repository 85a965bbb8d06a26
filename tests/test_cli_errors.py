"""A table of bad inputs through ``distill.cli.main``: each ends with exit code 2 and one
line on stderr that names the problem, never a traceback, and runs no code from a file."""

import shutil

import pytest
import torch

from distill.cli import main

from conftest import QUICK


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["run", "-o", str(out), *sets(*QUICK)]) == 0
    return out


def run_with(*overrides):
    return lambda tmp, done: ["run", "-o", str(tmp / "out"), *sets(*QUICK, *overrides)]


def config_file(text: str | bytes):
    def make(tmp, done):
        path = tmp / "config.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["run", str(path), "-o", str(tmp / "out")]

    return make


def in_copy(command, change=None, *extra):
    """``distill COMMAND COPY extra...`` on a copy of the finished run, after ``change(copy)``."""
    def make(tmp, done):
        copy = shutil.copytree(done, tmp / "copy")
        if change is not None:
            change(copy)
        return [command, str(copy), *extra] if command != "run" else ["run", "-o", str(copy), *extra]

    return make


def write(name, content):
    return lambda copy: (copy / name).write_bytes(content if isinstance(content, bytes) else content.encode())


def pool_file(state):
    def make(tmp, done):
        torch.save(state, tmp / "pool.pt")
        return run_with("init.kind=pretrained_random", f"init.pool={tmp / 'pool.pt'}", "init.train_networks=2")(tmp, done)

    return make


def plain(*argv):
    return lambda tmp, done: [a.replace("TMP", str(tmp)) for a in argv]


GOOD_POOL_KEYS = {"format": "distill-pool", "version": 1, "model": {"name": "mlp", "options": {"hidden": [32]}},
                  "input_shape": [1, 8, 8], "num_classes": 10, "num_params": 2410, "test_acc": torch.zeros(3)}

CASES = {
    # --set values
    "unknown key": (run_with("synthetic.stpes=3"), "did you mean 'synthetic.steps'"),
    "infinite epochs": (run_with("outer.epochs=.inf"), "outer.epochs: Input should be a finite number"),
    "infinite decay": (run_with("outer.decay_epochs=.inf"), "outer.decay_epochs: Input should be a finite number"),
    "nan lr": (run_with("outer.lr=.nan"), "outer.lr: Input should be a finite number"),
    "infinite gain": (run_with("init.gain=-.inf"), "init.gain: Input should be a finite number"),
    "negative lr_init": (run_with("synthetic.lr_init=-1"), "synthetic.lr_init: Input should be greater than 0"),
    "--set not YAML": (run_with("outer.epochs=[1"), "--set outer.epochs=[1 is not valid YAML"),
    "--set python tag": (run_with("outer.lr=!!python/object/apply:os.system ['touch MARKER']"), "is not valid YAML"),
    "--set without key": (run_with("=5"), "must look like key.subkey=value"),
    "--set empty part": (run_with("outer..lr=1"), "must look like key.subkey=value"),
    "--set without =": (run_with("outer.lr"), "must look like key.subkey=value"),
    "--set into a value": (run_with("seed=1", "seed.x=1"), "seed is not a section"),
    "negative seed": (run_with("seed=-1"), "seed: Input should be greater than or equal to 0"),
    "huge seed": (run_with("seed=99999999999999999999"), "seed: Input should be less than"),
    "betas out of range": (run_with("outer.betas=[1.0, 0.9]"), "betas must lie in [0, 1)"),
    "n not split into steps": (run_with("synthetic.n=7"), "cannot be split into 2 equal steps"),
    "selection without evaluations": (run_with("eval.select=best_train"), "set eval.every > 0"),
    "unknown method": (run_with("method=nosuch"), "method: Input should be"),
    "pretrained without pool": (run_with("init.kind=pretrained_fixed"), "init.pool goes with"),
    "unknown dataset": (run_with("dataset.name=mnsit"), "did you mean 'mnist'"),
    "missing dataset": (run_with("dataset.name=mnist", "dataset.root=/nonexistent"), "dataset.download: true"),
    "unknown model": (run_with("model.name=lenett"), "did you mean 'lenet'"),
    "unknown device": (run_with("run.device=tpu"), "run.device: Input should be"),
    "text for an integer": (run_with("outer.batch_size=abc"), "outer.batch_size: Input should be a valid integer"),
    "continual section without continual": (run_with("continual.learner=gem"), "the continual section goes with method: continual"),
    "missing label file": (run_with("synthetic.labels=learned", "synthetic.label_init=file", "synthetic.label_file=/none.csv"),
                           "synthetic.label_file: no file at /none.csv"),
    "too few hard labels": (run_with("synthetic.n=4", "synthetic.steps=1"), "fewer than the 10 classes"),
    # config files
    "missing config": (plain("run", "TMP/none.yaml", "-o", "TMP/out"), "cannot read config"),
    "config is a folder": (plain("run", "TMP", "-o", "TMP/out"), "cannot read config"),
    "config not UTF-8": (config_file(b"outer:\n  lr: 0.1 \xff\xfe\n"), "is not UTF-8 text"),
    "config is a list": (config_file("- 1\n- 2\n"), "must hold a mapping of config keys, not list"),
    "duplicate section": (config_file("outer: {lr: 0.1}\nseed: 1\nouter: {epochs: 2}\n"), "the key 'outer' is given twice"),
    "duplicate key": (config_file("outer:\n  lr: 0.1\n  lr: 0.2\n"), "the key 'lr' is given twice"),
    "config not YAML": (config_file("outer: [1, 2\n"), "is not valid YAML (line"),
    "config python tag": (config_file("seed: !!python/object/apply:os.system ['touch MARKER']\n"), "is not valid YAML"),
    # run directories
    "-o is a file": (lambda tmp, done: (tmp.joinpath("f").write_text("x"), ["run", "-o", str(tmp / "f")])[1], "is a file, not a directory"),
    "finished run": (in_copy("run", None, *sets(*QUICK)), "already holds a finished run; pass --overwrite"),
    "finished run without checkpoint": (in_copy("run", lambda c: (c / "checkpoint.pt").unlink(), *sets(*QUICK)), "already holds a finished run"),
    "resume nothing": (plain("run", "-o", "TMP/none", "--resume"), "is not a run directory"),
    "resume and overwrite": (in_copy("run", None, "--resume", "--overwrite"), "choose one"),
    "resume with --set": (in_copy("run", None, "--resume", "--set", "seed=3"), "--set cannot change a run that is resumed"),
    "truncated checkpoint": (in_copy("run", lambda c: write("checkpoint.pt", (c / "checkpoint.pt").read_bytes()[:200])(c), "--resume"),
                             "--overwrite"),
    "checkpoint that runs code": (in_copy("run", lambda c: torch.save({"x": Evil()}, c / "checkpoint.pt"), "--resume"), "not a file of plain tensors"),
    # show
    "show nothing": (plain("show", "TMP/none"), "not a run directory"),
    "show metrics without keys": (in_copy("show", write("metrics.json", '{"method": "distill"}')), "lacks test_acc"),
    "show metrics garbage": (in_copy("show", write("metrics.json", "{not json")), "metrics.json is corrupt"),
    "show nested garbage": (in_copy("show", write("metrics.json", '{"test_acc": 1, "before_acc": 2, "iterations": 3, "lrs": 4}')),
                            "metrics.json is corrupt or was written by another program"),
    "show log garbage": (in_copy("show", lambda c: (c / "metrics.json").unlink() or write("log.csv", "iteration,loss,seconds\nx,y,z\n")(c)),
                         "log.csv is corrupt at line 2"),
    "show config garbage": (in_copy("show", write("config.yaml", "outer: {lr: [\n")), "is not valid YAML"),
    # eval
    "eval nothing": (plain("eval", "TMP/none"), "not a run directory"),
    "eval zero models": (in_copy("eval", None, "--models", "0"), "--models must lie in 1..100,000, got 0"),
    "eval lr without model": (in_copy("eval", None, "--lr", "0.1"), "--lr goes with --model"),
    "eval kernel networks of a distill run": (in_copy("eval", None, "--kernel-networks", "8"),
                                              "--kernel-networks goes with a KIP run of kernel.name=convnet_rf"),
    "eval zero kernel networks": (in_copy("eval", None, "--kernel-networks", "0"), "--kernel-networks must lie in 1..1,024"),
    "eval kernel networks with a model": (in_copy("eval", None, "--kernel-networks", "8", "--model", "mlp"),
                                          "does not go with --model"),
    "eval negative lr": (in_copy("eval", None, "--model", "mlp", "--lr", "-1"), "--lr must be a positive number"),
    "eval unknown model": (in_copy("eval", None, "--model", "lenett"), "did you mean 'lenet'"),
    "eval without distilled data": (in_copy("eval", lambda c: (c / "distilled.pt").unlink()), "distilled.pt is missing"),
    "eval garbage distilled data": (in_copy("eval", write("distilled.pt", b"garbage")), "distilled.pt is corrupt"),
    "eval distilled data that runs code": (in_copy("eval", lambda c: torch.save({"x": Evil()}, c / "distilled.pt")),
                                           "not a file of plain tensors"),
    "eval garbage init": (in_copy("eval", write("init.pt", b"garbage")), "init.pt is corrupt"),
    # compare
    "compare plot format": (in_copy("compare", None, "--plot", "out.txt"), "name a .png, .pdf, .svg file"),
    "compare plot folder": (lambda tmp, done: ["compare", str(done), "--plot", str(tmp)], "is a directory"),
    "compare ratio": (in_copy("compare", None, "--ratio", "2"), "--ratio must lie in (0, 1]"),
    "compare nothing": (plain("compare", "TMP/none"), "not a run directory"),
    # train
    "train cache is a folder": (plain("train", "--set", "train.cache=TMP"), "is not a file"),
    "train cache garbage": (lambda tmp, done: (tmp.joinpath("c.json").write_text("[1"), ["train", "--set", f"train.cache={tmp / 'c.json'}"])[1],
                            "full-data cache"),
    # pretrain and pools
    "pretrain without out": (lambda tmp, done: (tmp.joinpath("p.yaml").write_text("seed: 0\n"), ["pretrain", str(tmp / "p.yaml")])[1],
                             "say where to write the pool"),
    "pretrain resume nothing": (lambda tmp, done: (tmp.joinpath("p.yaml").write_text("seed: 0\n"),
                                                   ["pretrain", str(tmp / "p.yaml"), "-o", str(tmp / "pool.pt"), "--resume"])[1],
                                "nothing to resume"),
    "pool garbage": (lambda tmp, done: (tmp.joinpath("pool.pt").write_bytes(b"x"), run_with(
        "init.kind=pretrained_random", f"init.pool={tmp / 'pool.pt'}", "init.train_networks=2")(tmp, done))[1], "pool.pt is corrupt"),
    "pool thetas not a tensor": (pool_file({**GOOD_POOL_KEYS, "thetas": [[0.0] * 2410] * 3}), "must be tensors"),
    "pool with nan weights": (pool_file({**GOOD_POOL_KEYS, "thetas": torch.full((3, 2410), float("nan"))}), "non-finite weights"),
    "missing pool": (run_with("init.kind=pretrained_random", "init.pool=/none/pool.pt", "init.train_networks=2"), "no pool file at"),
    # baseline
    "unknown baseline": (plain("baseline", "TMP/c.yaml", "--method", "nosuch"), "unknown baseline 'nosuch'"),
    "baseline resume": (in_copy("run", lambda c: write("config.yaml", (c / "config.yaml").read_text().replace(
        "method: distill", "method: random_real"))(c), "--resume"), "a random_real baseline has nothing to resume"),
    # added after the second probe
    "no command": (plain(), "the following arguments are required: command"),
    "unknown command": (plain("frobnicate"), "invalid choice: 'frobnicate'"),
    "unknown flag": (plain("run", "--bogus"), "unrecognized arguments: --bogus"),
    "models not an int": (plain("eval", "TMP", "--models", "abc"), "invalid int value: 'abc'"),
    "empty -o": (plain("run", "-o", ""), "-o must name a run directory"),
    "negative gain": (run_with("init.gain=-1"), "init.gain: Input should be greater than or equal to 0"),
    "huge lr_init": (run_with("synthetic.lr_init=1e300"), "synthetic.lr_init: Input should be less than or equal to 1000000"),
    "huge network count": (run_with("eval.models=1000000000000"), "eval.models: Input should be less than or equal to 100000"),
    "empty lr grid": (run_with("baseline.lrs=[]"), "baseline.lrs: List should have at least 1 item"),
    "model option of the wrong type": (config_file("model: {name: convnet, depth: abc}\n"), "model 'convnet' cannot be built"),
    "model option out of range": (config_file("model: {name: convnet, width: 0}\n"), "at least 1"),
    "checkpoint iteration not a number": (in_copy("run", lambda c: torch.save({**torch.load(c / "checkpoint.pt", weights_only=True),
                                                                               "iteration": "x"}, c / "checkpoint.pt"), "--resume"),
                                          "iteration 'x' is not one of this run's 0..6"),
    "checkpoint past the end": (in_copy("run", lambda c: torch.save({**torch.load(c / "checkpoint.pt", weights_only=True),
                                                                     "iteration": 10**9}, c / "checkpoint.pt"), "--resume"),
                                "is not one of this run's 0..6"),
    "checkpoint with nan data": (in_copy("run", lambda c: torch.save(nan_data(torch.load(c / "checkpoint.pt", weights_only=True)),
                                                                     c / "checkpoint.pt"), "--resume"), "holds non-finite state"),
    "eval infinite lr": (in_copy("eval", None, "--model", "mlp", "--lr", "inf"), "--lr must be a positive number up to 1e+06"),
    "eval evaluations not a list": (in_copy("eval", write("metrics.json", '{"evaluations": 3}')), "its evaluations are not a list"),
    "compare a broken cache entry": (lambda tmp, done: (tmp.joinpath("c.json").write_text('{"digits/mlp/0": {"test_acc": "high"}}'),
                                                        ["compare", str(done), "--cache", str(tmp / "c.json"), "--plot", str(tmp / "p.png")])[1],
                                     "full-data cache"),
    "partial pool of the wrong kind": (lambda tmp, done: (torch.save([1, 2], tmp / "pool.pt.partial"), tmp.joinpath("p.yaml").write_text("seed: 0\n"),
                                                          ["pretrain", str(tmp / "p.yaml"), "-o", str(tmp / "pool.pt"), "--resume"])[2],
                                       "pool.pt.partial is corrupt"),
    "eval too many models": (in_copy("eval", None, "--models", "1000000000000"), "--models must lie in 1..100,000"),
    "baseline distilled_run missing": (run_with("method=average_real", "baseline.distilled_run=/none"), "/none is not a run directory"),
    "plot into a folder that cannot be made": (in_copy("compare", None, "--plot", "/proc/none/p.png"), "/proc/none"),
    "a bool for a number": (run_with("outer.lr=true"), "outer.lr: Input should be a valid number"),
    "a float for an integer": (run_with("synthetic.n=20.0"), "synthetic.n: Input should be a valid integer"),
    "channels a picture cannot show": (run_with("dataset.channels=2"), "dataset.channels must be 1 (grey) or 3 (RGB); got 2"),
    # curves, TensorBoard, export
    "compare over a user's plot": (lambda tmp, done: (tmp.joinpath("compare.png").write_text("mine"), ["compare", str(done)])[1],
                                   "--plot compare.png already exists; pass --overwrite"),
    "compare curves over a file": (lambda tmp, done: (tmp.joinpath("c.svg").write_text("mine"),
                                                      ["compare", str(done), "--plot", str(tmp / "p.png"), "--curves", str(tmp / "c.svg")])[1],
                                   "c.svg already exists; pass --overwrite"),
    "compare plot and curves in one file": (lambda tmp, done: ["compare", str(done), "--plot", str(tmp / "p.png"),
                                                               "--curves", str(tmp / "p.png")], "both name"),
    "compare an existing file of another format": (lambda tmp, done: (tmp.joinpath("notes.txt").write_text("mine"),
                                                                      ["compare", str(done), "--plot", "notes.txt"])[1],
                                                   "--plot notes.txt: name a .png, .pdf, .svg file"),
    "compare curves format": (in_copy("compare", None, "--curves", "curves.txt"), "--curves curves.txt: name a .png, .pdf, .svg file"),
    "tensorboard folder is a file": (lambda tmp, done: (tmp.joinpath("tb").write_text("x"), run_with()(tmp, done) + ["--tensorboard", str(tmp / "tb")])[1],
                                     "is a file; name a folder"),
    "export nothing": (plain("export", "TMP/none"), "not a run directory"),
    "export unknown format": (in_copy("export", None, "--format", "csv"), "unknown export format 'csv'"),
    "export format against suffix": (in_copy("export", None, "--format", "pt", "-o", "data.npz"), "names a .npz file, but the format is pt"),
    "export over a file": (in_copy("export", write("export.npz", "mine")), "export.npz already exists; pass --overwrite"),
    "export into a folder": (lambda tmp, done: in_copy("export", None, "-o", str(tmp))(tmp, done), "is a directory; name a file"),
    "export where nothing can be written": (in_copy("export", None, "-o", "/proc/none/data.npz"), "/proc/none"),
    "export unfinished": (in_copy("export", lambda c: ((c / "metrics.json").unlink(), (c / "distilled.pt").unlink())),
                          "has not finished"),
    "export continual": (in_copy("export", lambda c: ((c / "distilled.pt").unlink(), as_method("continual")(c))),
                         "is a continual run: it holds no distilled training set"),
    "export knn": (in_copy("export", lambda c: ((c / "distilled.pt").unlink(), as_method("knn")(c))), "is a knn run"),
    "export garbage distilled data": (in_copy("export", write("distilled.pt", b"garbage")), "distilled.pt is corrupt"),
    "export garbage init": (in_copy("export", write("init.pt", b"garbage")), "init.pt is corrupt"),
}


def as_method(name):
    """Make the copy's config one of method ``name``."""
    return lambda copy: write("config.yaml", (copy / "config.yaml").read_text().replace("method: distill", f"method: {name}"))(copy)


def nan_data(state):
    state["data"]["x"] = state["data"]["x"] * float("nan")
    return state


class Evil:
    """Loading it would create the file MARKER in the current directory."""

    def __reduce__(self):
        return (open, ("MARKER", "w"))


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_line_and_exit_code_2(case, finished, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build, message = CASES[case]
    argv = build(tmp_path, finished)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("distill: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "MARKER").exists(), "no code from a file or an argument may run"


def test_an_unexpected_exception_keeps_its_traceback(monkeypatch):
    """A bug is not a user error: main lets it through (with its traceback), never exit code 2."""
    import distill.cli as cli

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "show", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(["show", "anything"])
