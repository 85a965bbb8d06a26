"""The entry points (distill.experiment) and the method table they dispatch through
(distill.methods): a run directory claimed or refused, resume with the same config only, and
re-evaluation refused for the methods that hold no distilled data."""

import importlib.util
import typing

import pytest

from distill.choices import BASELINES
from distill.config import Config, load_config
from distill.errors import UserError
from distill.experiment import evaluate_run, run_experiment
from distill.methods import METHODS, method
from distill.rundir import RunDir


def test_resume_needs_a_checkpoint_and_the_same_config(quick_config, tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        run_experiment(quick_config(), tmp_path / "none", resume=True)
    run_experiment(quick_config(), tmp_path / "r")
    with pytest.raises(UserError, match="different config"):
        run_experiment(quick_config("outer.lr=0.5"), tmp_path / "r", resume=True)
    with pytest.raises(UserError, match="already holds a finished run; pass --overwrite"):
        run_experiment(quick_config(), tmp_path / "r")
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt"):
        run_experiment(quick_config(), tmp_path / "r", resume=True)


def test_every_method_the_schema_accepts_has_an_importable_entry():
    accepted = typing.get_args(Config.model_fields["method"].annotation)
    assert set(accepted) == set(METHODS) == {"distill", "continual", "kip", "label_solve", *BASELINES}
    for name in accepted:
        assert importlib.util.find_spec(method(name).module) is not None, name


def test_an_unknown_method_suggests_the_closest_and_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown method 'distil' \(did you mean 'distill'\?\); choose one of: .*continual, distill"):
        method("distil")


@pytest.mark.parametrize(
    "name, message",
    [("continual", "is a continual run: it has no distilled data to evaluate; see its continual.json"),
     ("knn", r"is a knn baseline; evaluate its training set with --model NAME \(e.g. --model mlp\)")],
    ids=["continual", "knn"],
)
def test_a_run_without_distilled_data_is_not_re_evaluated(tmp_path, name, message):
    run = RunDir(tmp_path)
    run.create()
    run.write_config(load_config(None, [f"method={name}", "model.name=mlp"]).model_dump(mode="json"))
    with pytest.raises(UserError, match=message):
        evaluate_run(tmp_path)
