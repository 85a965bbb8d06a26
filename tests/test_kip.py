"""The KIP and Label Solve engines on digits with a simple kernel: they learn, resume
exactly, and Label Solve's labels are the least-squares ones over the whole target set."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from distill.datasets import load_dataset
from distill.distiller import InMemoryRun
from distill.errors import UserError
from distill.kip import KipSettings, SolveSettings, Targets, counts, kip, label_solve
from distill.krr import centred_one_hot, krr_accuracy
from distill.rundir import RunDir
from distill.seeds import generator
from distill.support import SupportSet


class Rbf:
    """An exact kernel family: the same function for every draw."""

    def draw(self, generator=None):
        return lambda a, b: torch.exp(-torch.cdist(a.flatten(1), b.flatten(1)).pow(2) / (2 * a[0].numel()))


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    x, y = ds.train_x, ds.train_y
    return Targets(x[200:], y[200:], 10, x[:200], y[:200]), ds


def support_of(targets, n=10, learn_labels=False):
    return SupportSet.from_real(targets.x, targets.y, n, 10, learn_labels, generator(0, 4))


class Stop(Exception):
    """Raised by ``stop_after``: an interruption of a run after a given step."""


def stop_after(steps):
    def check(done):
        if done == steps:
            raise Stop

    return check


SETTINGS = KipSettings(steps=6, lr=0.01, target_batch=200, reg=1e-6, log_every=2, checkpoint_every=3)


def test_balanced_batches_hold_every_class_equally():
    assert counts(23, 10) == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert sum(counts(1000, 10)) == 1000


def test_kip_lowers_the_loss_and_raises_the_held_out_accuracy(digits):
    targets, _ = digits
    support = support_of(targets)
    kernel = Rbf().draw()
    before = krr_accuracy(kernel, support.x.detach(), support.y.detach(), targets.held_x, targets.held_y, 1e-6)
    run = InMemoryRun()
    kip(replace(SETTINGS, steps=30, lr=0.03, log_every=1), Rbf(), support, targets, run)
    rows = run.read_log()
    assert float(rows[-1]["loss"]) < 0.8 * float(rows[0]["loss"])  # measured: 0.276 -> 0.18
    assert float(rows[-1]["krr_acc"]) > before + 0.15  # measured: 61.5% -> 90.5%


def whole_and_resumed(settings, targets, tmp_path):
    """An uninterrupted KIP run, and one stopped after step 3 and resumed from its
    checkpoint (asserted to be step 3's); returns both supports and the resumed run."""
    (tmp_path / "a").mkdir()
    whole = kip(settings, Rbf(), support_of(targets, learn_labels=True), targets, RunDir(tmp_path / "a"))
    run = RunDir(tmp_path / "b")
    run.path.mkdir()
    with pytest.raises(Stop):
        kip(settings, Rbf(), support_of(targets, learn_labels=True), targets, run, on_iteration=stop_after(3))
    state = run.read_checkpoint({"iteration"})
    assert state["iteration"] == 3
    resumed = kip(settings, Rbf(), support_of(targets, learn_labels=True), targets, run, checkpoint=state)
    return whole, resumed, run


def test_kip_resumed_from_a_checkpoint_ends_exactly_where_an_uninterrupted_run_does(digits, tmp_path):
    targets, _ = digits
    whole, resumed, run = whole_and_resumed(SETTINGS, targets, tmp_path)
    assert torch.equal(resumed.x, whole.x) and torch.equal(resumed.y, whole.y)
    assert [r["iteration"] for r in run.read_log()] == ["2", "4", "6"]


def test_the_learning_rate_decays_by_the_factor_every_decay_steps():
    decayed = KipSettings(lr=0.04, decay_steps=3, decay_factor=0.5)
    assert [decayed.lr_at(t) for t in range(7)] == [0.04, 0.04, 0.04, 0.02, 0.02, 0.02, 0.01]
    assert KipSettings(lr=0.04).lr_at(10_000) == 0.04


def test_a_decayed_kip_run_follows_the_constant_one_until_the_first_decay_and_resumes_exactly(digits, tmp_path):
    targets, _ = digits
    decayed = replace(SETTINGS, decay_steps=2, decay_factor=0.1)
    for steps, same in ((2, True), (3, False)):
        constant = kip(replace(SETTINGS, steps=steps), Rbf(), support_of(targets, learn_labels=True), targets)
        early = kip(replace(decayed, steps=steps), Rbf(), support_of(targets, learn_labels=True), targets)
        assert torch.equal(early.x, constant.x) is same
    whole, resumed, _ = whole_and_resumed(decayed, targets, tmp_path)
    assert torch.equal(resumed.x, whole.x) and torch.equal(resumed.y, whole.y)


def test_kip_refuses_another_configs_checkpoint_and_an_impossible_target_batch(digits, tmp_path):
    targets, _ = digits
    run = RunDir(tmp_path)
    kip(replace(SETTINGS, steps=1), Rbf(), support_of(targets), targets, run)
    state = run.read_checkpoint({"iteration"})
    with pytest.raises(UserError, match="another config"):
        kip(replace(SETTINGS, fingerprint="other"), Rbf(), support_of(targets), targets, run, checkpoint=state)
    with pytest.raises(UserError, match="kip.target_batch = 5000 is larger"):
        kip(replace(SETTINGS, target_batch=5000), Rbf(), support_of(targets), targets)


def test_kip_with_fixed_labels_learns_only_the_inputs(digits):
    targets, _ = digits
    support = support_of(targets)
    labels = support.y.detach().clone()
    kip(replace(SETTINGS, steps=2), Rbf(), support, targets)
    assert torch.equal(support.y, labels)


def test_label_solve_gives_the_least_squares_labels_of_the_whole_target_set(digits):
    targets, _ = digits
    support = support_of(targets, n=20)
    label_solve(SolveSettings(block=300, log_every=1), Rbf(), support, targets)
    k = Rbf().draw()
    x_s = support.x.detach().double()
    k_ss, k_ts = k(x_s, x_s), k(targets.x.double(), x_s)
    lam = 1e-6 * torch.trace(k_ss) / len(k_ss)
    a = (k_ts @ torch.linalg.inv(k_ss + lam * torch.eye(len(k_ss), dtype=torch.float64))).numpy()
    expected = np.linalg.lstsq(a, centred_one_hot(targets.y, 10, torch.float64).numpy(), rcond=None)[0]
    assert np.allclose(support.y.detach().numpy(), expected, atol=2e-3 * np.abs(expected).max())


def test_label_solve_resumes_exactly_from_any_block(digits, tmp_path):
    targets, _ = digits
    settings = SolveSettings(block=200, log_every=1, checkpoint_every=1)
    (tmp_path / "a").mkdir()
    whole = label_solve(settings, Rbf(), support_of(targets), targets, RunDir(tmp_path / "a"))

    run = RunDir(tmp_path / "b")
    run.path.mkdir()
    with pytest.raises(Stop):
        label_solve(settings, Rbf(), support_of(targets), targets, run, on_iteration=stop_after(2))
    resumed = label_solve(settings, Rbf(), support_of(targets), targets, run, checkpoint=run.read_checkpoint({"iteration"}))
    assert torch.equal(resumed.y, whole.y)
    assert [int(r["iteration"]) for r in run.read_log()] == list(range(1, 8))  # 1,237 targets in blocks of 200
