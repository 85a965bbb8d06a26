"""distill pretrain: vmapped pool training against plain per-network training, resume, errors."""

import pytest
import torch
import torch.nn.functional as F

from distill.config import load_config
from distill.datasets import load_dataset
from distill.errors import UserError
from distill.functional import FunctionalNet
from distill.seeds import Stream, generator
from distill.models import build_model
from distill.pool import load_pool
from distill.pretrain import pretrain

SMALL = [
    "model.name=mlp",
    "model.hidden=[16]",
    "pretrain.networks=3",
    "pretrain.models_at_once=2",
    "pretrain.epochs=2",
    "pretrain.batch_size=128",
    "pretrain.lr=0.03",
    "run.progress=false",
]


def small_config(*overrides):
    return load_config(None, SMALL + list(overrides))


def test_pool_file_holds_trained_networks_and_their_provenance(tmp_path):
    pool = pretrain(small_config("pretrain.dataset={name: digits, resize: 4}"), tmp_path / "pool.pt")
    state = torch.load(tmp_path / "pool.pt", weights_only=True)
    assert state["format"] == "distill-pool" and state["thetas"].shape == (3, 16 * 16 + 16 + 16 * 10 + 10)
    assert state["model"] == {"name": "mlp", "options": {"hidden": [16]}}
    assert state["input_shape"] == [1, 4, 4] and state["num_classes"] == 10
    assert state["source"]["name"] == "digits" and state["source"]["resize"] == 4
    assert state["seeds"] == [[0, Stream.POOL, i] for i in range(3)]
    assert state["last_batch"] == "kept"
    assert len({tuple(t[:4].tolist()) for t in pool.thetas}) == 3  # each network from its own init
    assert (pool.test_acc > 0.4).all()  # far above the 10% of chance after two epochs (observed 0.65-0.77)
    assert not (tmp_path / "pool.pt.partial").exists()


def test_vmapped_chunk_equals_plain_sgd_on_each_network(tmp_path):
    """Network i, trained with torch.optim.SGD on an ordinary nn.Module, one at a time."""
    config = small_config("pretrain.optimizer=sgd", "pretrain.momentum=0.5", "pretrain.weight_decay=0.01", "pretrain.lr=0.1")
    pool = pretrain(config, tmp_path / "pool.pt")
    data = load_dataset("digits")
    for i in range(3):
        module = build_model("mlp", (1, 8, 8), 10, hidden=[16])
        net = FunctionalNet.of(module)
        from distill.inits import init_weights

        start = net.unflatten(init_weights(net, "xavier", 1.0, generator(0, Stream.POOL, i)))
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(start[name])
        sgd = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.5, weight_decay=0.01)
        for epoch in range(2):
            perm = torch.randperm(len(data.train_y), generator=generator(0, Stream.POOL, i, epoch))
            for start in range(0, len(perm), 128):  # the last batch is partial
                idx = perm[start : start + 128]
                sgd.zero_grad()
                F.cross_entropy(module(data.train_x[idx]), data.train_y[idx]).backward()
                sgd.step()
        expected = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
        torch.testing.assert_close(pool.thetas[i], expected, rtol=1e-4, atol=1e-5)


def test_interrupted_and_resumed_pretraining_equals_an_uninterrupted_one(tmp_path):
    config = small_config()
    whole = pretrain(config, tmp_path / "whole.pt")

    def interrupt(first, epoch):
        if first == 2 and epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(config, tmp_path / "split.pt", on_epoch=interrupt)
    assert not (tmp_path / "split.pt").exists() and (tmp_path / "split.pt.partial").exists()
    with pytest.raises(UserError, match="unfinished pool; pass --resume"):
        pretrain(config, tmp_path / "split.pt")
    with pytest.raises(UserError, match="different config"):
        pretrain(small_config("pretrain.lr=0.02"), tmp_path / "split.pt", resume=True)
    split = pretrain(config, tmp_path / "split.pt", resume=True)
    assert torch.equal(split.thetas, whole.thetas) and torch.equal(split.test_acc, whole.test_acc)
    assert torch.equal(load_pool(tmp_path / "split.pt").thetas, whole.thetas)


def test_existing_pool_and_missing_partial_are_user_errors(tmp_path):
    pretrain(small_config("pretrain.networks=1", "pretrain.epochs=1"), tmp_path / "pool.pt")
    with pytest.raises(UserError, match="already exists"):
        pretrain(small_config(), tmp_path / "pool.pt")
    with pytest.raises(UserError, match="nothing to resume"):
        pretrain(small_config(), tmp_path / "other.pt", resume=True)


def test_partial_pool_from_the_drop_last_rule_is_refused(tmp_path):
    """A partial pool without the batch rule in its meta was trained dropping last batches."""
    config = small_config()

    def interrupt(first, epoch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(config, tmp_path / "pool.pt", on_epoch=interrupt)
    partial = tmp_path / "pool.pt.partial"
    state = torch.load(partial, weights_only=True)
    del state["meta"]["last_batch"]
    torch.save(state, partial)
    with pytest.raises(UserError, match="older distill whose passes dropped"):
        pretrain(config, tmp_path / "pool.pt", resume=True)
