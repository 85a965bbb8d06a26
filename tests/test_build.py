"""From a config to what a run needs (distill.build): the device, the config checked against the
dataset, and a pretrained pool checked against the model and the split the config asks for."""

import pytest
import torch

from distill.build import resolve_device
from distill.errors import UserError
from distill.experiment import run_experiment


def test_too_few_samples_for_hard_labels(quick_config, tmp_path):
    with pytest.raises(UserError, match="fewer than the 10 classes"):
        run_experiment(quick_config("synthetic.n=4", "synthetic.steps=1"), tmp_path)


def test_a_pool_for_another_model_is_rejected_naming_both(quick_config, tmp_path, digits_pool):
    path, _ = digits_pool
    config = quick_config("model.hidden=[16]", "init.kind=pretrained_random", f"init.pool={path}", "init.train_networks=3")
    with pytest.raises(UserError, match=r"holds mlp\(hidden=\[32\]\) for 10 classes.*this run builds mlp\(hidden=\[16\]\)"):
        run_experiment(config, tmp_path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["init.train_networks=5"], "leaves no held-out network"),
        (["init.train_networks=2", "outer.models_per_iteration=3"], "more than the 2 training networks"),
    ],
)
def test_impossible_pool_splits(quick_config, tmp_path, digits_pool, overrides, message):
    path, _ = digits_pool
    config = quick_config("init.kind=pretrained_random", f"init.pool={path}", *overrides)
    with pytest.raises(UserError, match=message):
        run_experiment(config, tmp_path)


def test_pretrained_fixed_network_out_of_range(quick_config, tmp_path, digits_pool):
    path, _ = digits_pool
    with pytest.raises(UserError, match="init.network = 7, but the pool .* holds 5 networks"):
        run_experiment(quick_config("init.kind=pretrained_fixed", f"init.pool={path}", "init.network=7"), tmp_path)


def test_auto_is_the_cpu_without_cuda_and_cuda_is_refused_when_absent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    with pytest.raises(UserError, match="run.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"):
        resolve_device("cuda")
