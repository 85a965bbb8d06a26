"""A finished run's distilled data outside the run directory (distill.export): ``distill.load``
and its network, ``replay`` reproducing ``distill eval``, and the exported files read back
with numpy and torch alone, trained on by a loop that knows nothing of this package."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import distill
from distill.cli import main
from distill.config import load_config
from distill.datasets import load_dataset
from distill.errors import UserError
from distill.experiment import evaluate_run
from distill.export import DistilledRun, export, export_arrays
from distill.models import build_model
from distill.synthetic import DistilledData

from conftest import QUICK


def sets(*overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["run", "-o", str(out), *sets(*QUICK)]) == 0
    return out


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


@pytest.mark.slow
def test_replay_on_the_runs_network_reproduces_distill_eval(fixed_run, digits):
    reported = evaluate_run(fixed_run).test_acc
    assert reported.n == 1
    run = distill.load(fixed_run)
    trained = run.data.replay(run.model())
    assert accuracy(trained, digits.test_x, digits.test_y) == pytest.approx(reported.mean, abs=1e-6)
    assert accuracy(run.model(), digits.test_x, digits.test_y) != pytest.approx(reported.mean, abs=1e-6), \
        "model() is a fresh untrained copy every time"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_an_exported_file_trains_a_network_with_numpy_and_torch_alone(fixed_run, digits, tmp_path, fmt):
    path = export(distill.load(fixed_run), fmt, tmp_path / f"data.{fmt}")
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: torch.from_numpy(f[name]) for name in f.files}
    else:
        arrays = torch.load(path, weights_only=True)
    assert {"x", "labels", "lrs", "order", "epochs", "num_classes"} <= set(arrays)
    x, labels, lrs, order = arrays["x"], arrays["labels"], arrays["lrs"], arrays["order"]
    assert x.shape == (2, 10, 1, 8, 8) and labels.dtype == torch.int64 and labels.shape == (2, 10)
    assert order.tolist() == [0, 1, 0, 1] and len(lrs) == 2 * int(arrays["epochs"]) and int(arrays["num_classes"]) == 10

    model = build_model("mlp", (1, 8, 8), 10, hidden=[32])  # the user's own copy of the architecture
    model.load_state_dict({name[len("init."):]: v for name, v in arrays.items() if name.startswith("init.")})
    params = list(model.parameters())
    for t, lr in enumerate(lrs):  # plain gradient descent, step order(t) at rate lrs[t]
        loss = F.cross_entropy(model(x[order[t]]), labels[order[t]])
        with torch.no_grad():
            for p, g in zip(params, torch.autograd.grad(loss, params)):
                p -= lr * g
    run = distill.load(fixed_run)
    replayed = run.data.replay(run.model())
    for mine, theirs in zip(params, replayed.parameters()):
        assert torch.allclose(mine, theirs, atol=1e-6)


@pytest.mark.slow
def test_export_refuses_to_replace_a_file_and_other_formats(fixed_run, tmp_path):
    run = distill.load(fixed_run)
    path = export(run)
    assert path == fixed_run / "export.npz"
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        export(run)
    assert export(run, overwrite=True) == path
    assert export(run, out=tmp_path / "deeper" / "d.pt") == tmp_path / "deeper" / "d.pt"
    with pytest.raises(UserError, match="unknown export format 'csv'"):
        export(run, "csv")
    with pytest.raises(UserError, match="names a .npz file, but the format is pt"):
        export(run, "pt", tmp_path / "d.npz")
    path.unlink()


def test_soft_labels_and_a_run_without_an_initial_network(tmp_path):
    soft = torch.softmax(torch.randn(4, 3), -1)
    data = DistilledData.create(4, 2, 1, (1, 2, 2), 3, 0.1, soft_labels=soft)
    run = DistilledRun(tmp_path, load_config(None, ["init.kind=random"]), data, None)
    arrays = export_arrays(run)
    assert arrays["labels"].dtype == torch.float32 and torch.equal(arrays["labels"].flatten(0, 1), soft)
    assert not any(name.startswith("init.") for name in arrays)
    with pytest.raises(UserError, match="holds no initial network"):
        run.model()
