"""The scikit-learn-style front end on digits: fit, score, save/load, and that fit learns
exactly what ``distill run`` with the equivalent config learns."""

import pytest
import torch

from distill import Distiller
from distill.datasets import load_dataset
from distill.errors import UserError
from distill.experiment import run_experiment
from distill.synthetic import DistilledData

QUICK = dict(model="mlp", hidden=[32], n=20, steps=2, epochs=2, max_iter=30, lr=0.1, batch_size=256, eval_models=3,
             device="cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.slow
def test_fit_score_save_load(digits, tmp_path):
    d = Distiller(init="random", **QUICK).fit(digits.train_x, digits.train_y)
    assert d.data_.x.shape == (2, 10, 1, 8, 8)
    accuracy = d.score(digits.test_x, digits.test_y)
    assert isinstance(accuracy, float) and 0.3 < accuracy <= 1, "far above chance (0.1) after 30 iterations (seen: 0.72)"
    d.save(tmp_path / "d.pt")
    again = Distiller.load(tmp_path / "d.pt")
    assert torch.equal(again.data_.x, d.data_.x) and torch.equal(again.data_.raw_lrs, d.data_.raw_lrs)
    assert again.score(digits.test_x, digits.test_y) == accuracy


@pytest.mark.slow
def test_fit_learns_what_distill_run_learns(digits, tmp_path):
    """Same seed, same settings: the tensors' fit and `distill run` on digits give the same data."""
    d = Distiller(**QUICK).fit(digits.train_x, digits.train_y)
    config = d.config("digits", len(digits.train_y)).model_copy(update={"run": d.setup_.config.run})
    run_experiment(config, tmp_path / "run")
    saved = DistilledData.load(tmp_path / "run" / "distilled.pt")
    assert torch.equal(saved.x, d.data_.x.cpu()) and torch.equal(saved.raw_lrs, d.data_.raw_lrs.cpu())
    assert d.score(digits.test_x, digits.test_y) == pytest.approx(
        __import__("json").loads((tmp_path / "run" / "metrics.json").read_text())["test_acc"]["mean"], abs=1e-6)


def test_fit_by_dataset_name_and_soft_labels(digits):
    d = Distiller(labels="learned", **{**QUICK, "n": 5, "steps": 1, "max_iter": 5}).fit("digits")
    assert d.data_.labels.shape == (1, 5, 10) and d.data_.labels.is_floating_point()


@pytest.mark.parametrize("params, message", [
    (dict(n=7, steps=2), "cannot be split into 2 equal steps"),
    (dict(init="sometimes"), "init.kind"),
    (dict(lr=-1.0), "outer.lr"),
    (dict(max_iter=0), "max_iter must be a positive"),
    (dict(outer__clip_grad_norm=-1.0), "outer.clip_grad_norm"),
])
def test_bad_parameters_are_refused_when_the_estimator_is_made(params, message):
    with pytest.raises(UserError, match=message):
        Distiller(**{**QUICK, **params})


def test_bad_tensors_and_an_unfitted_score(digits):
    with pytest.raises(UserError, match="not fitted"):
        Distiller(**QUICK).score(digits.test_x, digits.test_y)
    with pytest.raises(UserError, match=r"\[N, C, H, W\]"):
        Distiller(**QUICK).fit(digits.train_x[:, 0], digits.train_y)
    with pytest.raises(UserError, match="integer class labels"):
        Distiller(**QUICK).fit(digits.train_x, digits.train_y.float())


def test_unset_parameters_take_the_config_defaults():
    from distill.config import load_config

    default = load_config(None)
    config = Distiller().config()
    assert config.synthetic == default.synthetic and config.outer.lr == default.outer.lr
    assert config.model == default.model and config.init == default.init and config.eval.models == default.eval.models
