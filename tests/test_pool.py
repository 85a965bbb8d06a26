"""Pool files: format, loading with weights_only, and rejection of a pool for another architecture."""

import pytest
import torch

from distill.errors import UserError
from distill.pool import Architecture, Pool, load_pool


def lenet_pool(n=3, classes=10):
    arch = Architecture.of("lenet", {}, (1, 28, 28), classes, 61_706 if classes == 10 else 61_706 - 84 * (10 - classes) - (10 - classes))
    return Pool(torch.randn(n, arch.num_params), torch.rand(n), arch, {"source": {"name": "digits", "resize": 28}, "seed": 0})


def test_pool_round_trips_through_a_weights_only_file(tmp_path):
    pool = lenet_pool()
    pool.save(tmp_path / "sub" / "pool.pt")
    state = torch.load(tmp_path / "sub" / "pool.pt", weights_only=True)
    assert state["format"] == "distill-pool" and state["model"] == {"name": "lenet", "options": {}}
    loaded = load_pool(tmp_path / "sub" / "pool.pt")
    assert torch.equal(loaded.thetas, pool.thetas) and loaded.architecture == pool.architecture
    assert loaded.source == "digits" and loaded.meta["source"]["resize"] == 28


def test_architecture_fills_in_the_model_defaults():
    assert Architecture.of("convnet", {"width": 8}, (1, 8, 8), 10, 5).options == {"width": 8, "depth": 3, "norm": "instance"}
    assert Architecture.of("mlp", {"hidden": (4,)}, (1, 8, 8), 10, 5) == Architecture.of("mlp", {"hidden": [4]}, [1, 8, 8], 10, 5)


@pytest.mark.parametrize(
    "expected, named",
    [
        (Architecture.of("resnet18", {"norm": "group"}, (1, 28, 28), 10, 11_168_000), "resnet18"),
        (Architecture.of("lenet", {}, (1, 28, 28), 5, 61_281), "for 5 classes"),
        (Architecture.of("lenet", {}, (3, 32, 32), 10, 62_006), "on 3x32x32 inputs"),
    ],
)
def test_a_pool_for_another_architecture_or_class_count_names_both(expected, named):
    with pytest.raises(UserError) as error:
        lenet_pool().check(expected, "p.pt")
    message = str(error.value)
    assert "lenet() for 10 classes on 1x28x28 inputs" in message and "pretrained on digits" in message
    assert named in message.split("this run builds")[1]


def test_missing_and_foreign_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no pool file at .*distill pretrain"):
        load_pool(tmp_path / "none.pt")
    torch.save({"x": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a pool file"):
        load_pool(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="junk.pt is corrupt or not a distill file"):
        load_pool(tmp_path / "junk.pt")


@pytest.mark.parametrize("change, message", [
    (lambda s: {**s, "thetas": s["thetas"].tolist()}, "must be tensors"),
    (lambda s: {**s, "thetas": s["thetas"] * float("nan")}, "networks 0, 1 have non-finite weights"),
    (lambda s: {**s, "model": {"name": "mlp", "options": [1]}}, "model description is malformed"),
    (lambda s: {k: v for k, v in s.items() if k != "num_classes"}, "lacks 'num_classes'"),
])
def test_a_damaged_pool_is_named_when_it_is_read(tmp_path, change, message):
    pool = Pool(torch.randn(2, 5), torch.rand(2), Architecture("mlp", {"hidden": [1]}, (1, 2, 2), 1, 5), {})
    torch.save(change(pool.state()), tmp_path / "pool.pt")
    with pytest.raises(UserError, match=message):
        load_pool(tmp_path / "pool.pt")
