"""One distillation over several processes (torch.distributed, gloo on localhost): the
split of the work, the gradients and the run directory of 2 processes against 1, and bad
input (an indivisible K, a fixed init, a method that runs alone, ranks that disagree, a rank
that dies). Every multi-process test is bounded in time and leaves no process behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from distill.distributed import SOLO, Group
from distill.errors import UserError
from distill.functional import FunctionalNet
from distill.models import build_model
from distill.unroll import hypergradient

LAUNCH_TIMEOUT_S = 240
TINY = ["init.kind=random", "outer.models_per_iteration=4", "outer.epochs=3", "synthetic.steps=2", "synthetic.epochs=1",
        "synthetic.n=20", "eval.models=5", "run.progress=false", "run.device=cpu", "run.timeout=60"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def torchrun(args: list[str], cwd: Path, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node processes -m distill ARGS`` on localhost, one thread each."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "distill", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)


def errors_of(done: subprocess.CompletedProcess) -> list[str]:
    """The ``distill: ...`` messages of all ranks (two ranks writing at once may share a line)."""
    return ["distill: " + part.split("\n")[0] for part in done.stderr.split("distill: ")[1:]]


# --- the split, in one process ------------------------------------------------------------


@pytest.mark.parametrize("total,size", [(4, 2), (5, 2), (1, 2), (10, 3), (0, 2)])
def test_the_shares_of_the_ranks_cover_every_item_once(total, size):
    shares = [range(total)[Group(rank, size).share(total)] for rank in range(size)]
    assert [i for share in shares for i in share] == list(range(total))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_an_indivisible_count_is_refused_with_the_multiple_to_use():
    with pytest.raises(UserError, match="3, which does not divide among the 2 processes.*multiple of 2"):
        Group(0, 2).split(3, "outer.models_per_iteration")
    assert Group(1, 2).split(4, "K") == slice(2, 4)


def test_a_fixed_init_has_one_network_per_iteration_to_split():
    from distill.inits import FixedInit, RandomInit

    net = FunctionalNet.of(build_model("mlp", (1, 4, 4), 3, hidden=[8]))
    assert FixedInit(net, "default", 1.0, 0).rows(4) == 1 and RandomInit(net, "default", 1.0, 0).rows(4) == 4
    with pytest.raises(UserError, match="is 1, which does not divide among the 2 processes"):
        Group(0, 2).split(FixedInit(net, "default", 1.0, 0).rows(4), "outer.models_per_iteration")


def test_one_process_is_its_own_group():
    t = torch.tensor([1.0, 2.0])
    SOLO.mean_([t])
    assert torch.equal(t, torch.tensor([1.0, 2.0])) and torch.equal(SOLO.gather(t), t)
    assert SOLO.main and not SOLO.distributed and SOLO.share(7) == slice(0, 7)
    SOLO.agree("anything", "the config")
    SOLO.settle(None)
    with pytest.raises(UserError, match="mine"):
        SOLO.settle(UserError("mine"))


# --- several processes ----------------------------------------------------------------------

WORKER = textwrap.dedent("""
    import os, sys, time, torch
    from datetime import timedelta
    rank, size, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    torch.distributed.init_process_group("gloo", rank=rank, world_size=size, timeout=timedelta(seconds=30))
    from distill.distributed import Group
    from distill.errors import PeerLost, UserError
    group = Group(rank, size)
    try:
        if mode in ("gradients", "kip", "label_solve"):
            import tests.test_distributed as t
            torch.save({"gradients": t.split_gradients, "kip": t.kip_gradients, "label_solve": t.solved_labels}[mode](group),
                       sys.argv[4])
        elif mode == "disagree":
            group.agree(f"config of rank {rank}" if rank else "config of rank 0", "the config")
        elif mode == "die":
            if rank == 1:
                os._exit(3)
            time.sleep(1)
            group.mean_([torch.ones(3)])
    except (UserError, PeerLost) as error:
        print(f"{type(error).__name__}: {error}", flush=True)
        torch.distributed.destroy_process_group()  # as distill.distributed.join's exit handler does
        sys.exit(2)
    torch.distributed.destroy_process_group()
    print("done", flush=True)
""")


def spawn(mode: str, tmp_path: Path, *extra: str, size: int = 2) -> list[subprocess.CompletedProcess]:
    """``size`` worker processes (``WORKER``) joined by gloo on localhost; their results."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(size), mode, *extra], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in range(size)]
    done = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=LAUNCH_TIMEOUT_S)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            p.kill()
    return done


def gradient_problem():
    """A float64 MLP, 4 initialisations, 2 synthetic steps of 6 samples, a real batch of 16."""
    gen = torch.Generator().manual_seed(0)
    net = FunctionalNet.of(build_model("mlp", (1, 4, 4), 3, hidden=[8]).double())
    theta0 = 0.3 * torch.randn(4, net.num_params, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 6, 1, 4, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 6), generator=gen)
    lrs = torch.tensor([0.3, 0.2, 0.1, 0.05], dtype=torch.float64)
    real_x = torch.randn(16, 1, 4, 4, generator=gen, dtype=torch.float64)
    real_y = torch.randint(0, 3, (16,), generator=gen)
    return net, theta0, x, labels, lrs, real_x, real_y


def split_gradients(group: Group) -> dict:
    """This rank's share of the 4 initialisations, its gradients averaged over the ranks."""
    net, theta0, x, labels, lrs, real_x, real_y = gradient_problem()
    result = hypergradient(net, theta0[group.split(len(theta0), "K")], x, labels, lrs, real_x, real_y)
    grads = [result.loss, result.x, result.lrs]
    group.mean_(grads)
    return dict(zip(("loss", "x", "lrs"), grads))


@pytest.mark.slow
def test_two_processes_give_the_gradients_of_one(tmp_path):
    """K = 2 per rank on 2 ranks against K = 4 in this process, float64: equal to round-off (1e-12)."""
    done = spawn("gradients", tmp_path, str(tmp_path / "g.pt"))
    assert all(d.returncode == 0 for d in done), [d.stderr[-2000:] for d in done]
    split = torch.load(tmp_path / "g.pt", weights_only=True)
    net, theta0, x, labels, lrs, real_x, real_y = gradient_problem()
    whole = hypergradient(net, theta0, x, labels, lrs, real_x, real_y)
    for name in ("loss", "x", "lrs"):
        assert torch.allclose(split[name], getattr(whole, name), rtol=1e-12, atol=1e-14), name
    assert split["x"].abs().max() > 1e-6, "a gradient that is not zero"


def kip_problem():
    """A float64 FC-2 NTK, 10 support samples with learned labels, a target batch of 25 (uneven shares)."""
    from distill.kernels import KernelSpec
    from distill.krr import centred_one_hot
    from distill.support import SupportSet

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(60, 12, generator=gen, dtype=torch.float64)
    y = torch.arange(60) % 5
    support = SupportSet.from_real(x[:30], y[:30], 10, 5, True, gen)
    support.y.data += 0.1 * torch.randn(support.y.shape, generator=gen, dtype=torch.float64)
    kernel = KernelSpec(name="fc", depth=2).draw()
    return kernel, support, x[35:], centred_one_hot(y[35:], 5, torch.float64)


def kip_gradients(group: Group) -> dict:
    from distill.kip import loss_and_gradients

    kernel, support, x_t, y_t = kip_problem()
    loss = loss_and_gradients(kernel, support, x_t, y_t, 1e-4, group)
    return {"loss": loss, "x": support.x.grad, "y": support.y.grad}


def label_problem():
    from distill.kernels import KernelSpec
    from distill.kip import Targets
    from distill.support import SupportSet

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(230, 12, generator=gen, dtype=torch.float64)
    y = torch.arange(230) % 5
    targets = Targets(x[20:], y[20:], 5, x[:20], y[:20])
    return KernelSpec(name="fc", depth=2), SupportSet.from_real(x[20:], y[20:], 10, 5, False, gen), targets


def solved_labels(group: Group) -> dict:
    """Label Solve over 210 targets in 7 blocks of 30 (rounds of 2 blocks, the last one alone)."""
    from distill.kip import SolveSettings, label_solve

    kernel, support, targets = label_problem()
    label_solve(SolveSettings(reg=1e-4, block=30, log_every=3, checkpoint_every=None), kernel, support, targets, group=group)
    return {"y": support.y.detach()}


@pytest.mark.slow
def test_two_processes_give_the_kip_loss_and_support_gradient_of_one(tmp_path):
    """Kernel rows of K_ts and K_ss split over 2 ranks, gathered, and the ranks' VJPs summed:
    the loss and gradients of plain autograd in one process, float64, to 1e-12; and Label
    Solve's labels over target blocks spread over the ranks, to 1e-9."""
    done = spawn("kip", tmp_path, str(tmp_path / "kip.pt"))
    assert all(d.returncode == 0 for d in done), [d.stderr[-2000:] for d in done]
    split = torch.load(tmp_path / "kip.pt", weights_only=True)
    whole = kip_gradients(SOLO)
    for name in ("loss", "x", "y"):
        assert torch.allclose(split[name], whole[name], rtol=1e-12, atol=1e-14), name
    assert split["x"].abs().max() > 1e-6 and split["y"].abs().max() > 1e-6

    done = spawn("label_solve", tmp_path, str(tmp_path / "ls.pt"))
    assert all(d.returncode == 0 for d in done), [d.stderr[-2000:] for d in done]
    labels = torch.load(tmp_path / "ls.pt", weights_only=True)["y"]
    assert torch.allclose(labels, solved_labels(SOLO)["y"], rtol=1e-9, atol=1e-11)


@pytest.mark.slow
def test_a_two_process_run_writes_the_run_of_one_process(tmp_path):
    """The same config with 2 processes (K = 2 each) and in one process (K = 4): the same
    distilled data to float32 round-off (atol 1e-5), the same held-out accuracies; rank 0 alone
    wrote the directory; a resume on 2 processes reads the checkpoint on both."""
    from distill.config import load_config
    from distill.experiment import run_experiment

    run_experiment(load_config(None, TINY), tmp_path / "one")
    done = torchrun(["run", "-o", str(tmp_path / "two"), *sets(TINY)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("test accuracy") == 1, "rank 0 alone prints the result"
    one = torch.load(tmp_path / "one" / "distilled.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "distilled.pt", weights_only=True)
    for key in ("x", "raw_lrs"):
        assert torch.allclose(one[key], two[key], atol=1e-5, rtol=0), key
    metrics = [(tmp_path / run / "metrics.json").read_text() for run in ("one", "two")]
    import json
    accs = [json.loads(m)["test_acc"] for m in metrics]
    assert [json.loads(m)["processes"] for m in metrics] == [1, 2]
    assert accs[0]["n"] == accs[1]["n"] == 5 and abs(accs[0]["mean"] - accs[1]["mean"]) < 0.02
    assert not list((tmp_path / "two").glob(".*")), "no temporary files left"

    (tmp_path / "two" / "metrics.json").unlink()
    again = torchrun(["run", "-o", str(tmp_path / "two"), "--resume"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["test_acc"] == accs[1]


@pytest.mark.slow
@pytest.mark.parametrize("overrides,message", [
    (["outer.models_per_iteration=3"], "is 3, which does not divide among the 2 processes"),
    (["method=random_real"], "method random_real runs in one process"),
])
def test_bad_distributed_input_stops_every_process_with_one_message(tmp_path, overrides, message):
    done = torchrun(["run", "-o", str(tmp_path / "run"), *sets(TINY + overrides)], tmp_path)
    assert done.returncode != 0
    lines = errors_of(done)
    assert len(lines) == 2 and all(message in line for line in lines), done.stderr[-3000:]
    assert not re.search(r'File "[^"]*/distill/[^"]*\.py"', done.stderr), "no traceback from the package (torchrun's own is there)"


@pytest.mark.slow
def test_a_directory_rank_0_cannot_claim_stops_the_other_ranks_too(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("method: distill\n")
    done = torchrun(["run", "-o", str(tmp_path / "run"), *sets(TINY)], tmp_path)
    lines = errors_of(done)
    assert done.returncode != 0 and len(lines) == 2, done.stderr[-3000:]
    assert any("already holds an unfinished run" in line for line in lines)
    assert any("rank 0 of this distributed run stopped with the error printed above" in line for line in lines)


@pytest.mark.slow
def test_ranks_that_disagree_on_the_config_stop_with_a_message(tmp_path):
    done = spawn("disagree", tmp_path)
    assert [d.returncode for d in done] == [2, 2]
    assert all("disagree on the config: rank 1 differs from rank 0" in d.stdout for d in done)


@pytest.mark.slow
def test_a_rank_that_dies_stops_the_others_without_a_hang(tmp_path):
    done = spawn("die", tmp_path)
    assert done[1].returncode == 3
    assert done[0].returncode == 2 and "PeerLost: another process of this distributed run stopped" in done[0].stdout


@pytest.mark.slow
def test_a_two_process_kip_run_writes_the_run_of_one_process(tmp_path):
    """KIP on digits with 2 processes and in one: the same support set, one log."""
    from distill.config import load_config
    from distill.experiment import run_experiment

    kip = ["method=kip", "synthetic.n=20", "kip.steps=3", "kip.target_batch=200", "kip.holdout=100", "kip.transfer.models=2",
           "kip.transfer.steps=5", "run.progress=false", "run.device=cpu", "run.log_every=1"]
    run_experiment(load_config(None, kip), tmp_path / "one")
    done = torchrun(["run", "-o", str(tmp_path / "two"), *sets(kip)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "support.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "support.pt", weights_only=True)
    # Adam's normalised steps turn float32 round-off in near-zero gradient entries into differences of up to
    # about 2e-5 after 3 steps (seen: 2.1e-5; one process on 1 or 2 threads differs as much, 1.8e-5).
    assert torch.allclose(one["x"], two["x"], atol=1e-4, rtol=0) and torch.allclose(one["labels"], two["labels"], atol=1e-4, rtol=0)
    logs = [(tmp_path / run / "log.csv").read_text().splitlines() for run in ("one", "two")]
    assert len(logs[0]) == len(logs[1]) == 4, "rank 0 alone logs, a row per step"


API_SCRIPT = textwrap.dedent("""
    import sys, torch
    from distill import Distiller
    from distill.datasets import load_dataset
    digits = load_dataset("digits")
    d = Distiller(model="mlp", hidden=[32], n=20, steps=2, epochs=1, init="random", models_per_iteration=4, max_iter=3,
                  eval_models=2, device="cpu").fit(digits.train_x, digits.train_y)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    torch.save(d.data_.x.detach(), sys.argv[1] + f".{rank}")
""")


@pytest.mark.slow
def test_the_python_api_under_torchrun_splits_the_work_and_ends_alike_on_every_rank(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(API_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "one")], env=env, check=True, timeout=LAUNCH_TIMEOUT_S)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master-addr", "127.0.0.1",
                           "--master-port", str(free_port()), str(script), str(tmp_path / "two")], env=env, capture_output=True,
                          text=True, timeout=LAUNCH_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    one, rank0, rank1 = (torch.load(tmp_path / name, weights_only=True) for name in ("one.0", "two.0", "two.1"))
    assert torch.equal(rank0, rank1), "every rank takes the same steps"
    assert torch.allclose(one, rank0, atol=1e-5, rtol=0)
