"""Full-data training: the functional Adam loop against an ordinary nn.Module + torch.optim loop;
the cache of ``distill train``."""

import json

import torch
import torch.nn.functional as F

from distill.cli import main
from distill.config import load_config
from distill.fulltrain import full_data_accuracy, train_full
from distill.functional import FunctionalNet
from distill.models import build_model
from distill.preprocess import augment

from conftest import QUICK
from methods.test_bilevel import TEXT, write_corpus


def module_adam_training(module, x, y, epochs, lr, batch_size, gen, step_size=None, gamma=1.0, transform=None):
    """``module`` trained in place by torch.optim.Adam (with a StepLR schedule when ``step_size``
    is given) on ``gen``'s shuffles, each batch mapped by ``transform``; its final weights."""
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size or epochs, gamma=gamma)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            inputs = x[rows] if transform is None else transform(x[rows])
            F.cross_entropy(module(inputs), y[rows]).backward()
            optimizer.step()
        if step_size:
            schedule.step()
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach()


def test_train_full_matches_module_training_with_the_same_batches():
    torch.manual_seed(0)
    module = build_model("mlp", (1, 3, 3), 3, hidden=[7]).double()
    net = FunctionalNet.of(module)
    x, y = torch.randn(50, 1, 3, 3, dtype=torch.float64), torch.randint(3, (50,))
    theta0 = torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()
    theta, losses = train_full(net, theta0, x, y, epochs=2, lr=0.01, batch_size=16, gen=torch.Generator().manual_seed(5))
    assert losses.shape == (2,) and torch.isfinite(losses).all()

    expected = module_adam_training(module, x, y, epochs=2, lr=0.01, batch_size=16, gen=torch.Generator().manual_seed(5))
    assert torch.allclose(theta, expected, atol=1e-10)
    assert not torch.allclose(theta, theta0)


def test_augmented_step_decayed_training_matches_module_training_with_steplr():
    torch.manual_seed(1)
    module = build_model("mlp", (1, 4, 4), 3, hidden=[6]).double()
    net = FunctionalNet.of(module)
    x, y = torch.randn(40, 1, 4, 4, dtype=torch.float64), torch.randint(3, (40,))
    theta0 = torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()
    theta, _ = train_full(net, theta0, x, y, epochs=3, lr=0.02, batch_size=16, gen=torch.Generator().manual_seed(2),
                          augmentations=("flip", "crop"), decay_epochs=2, decay_factor=0.5)

    gen = torch.Generator().manual_seed(2)
    expected = module_adam_training(module, x, y, epochs=3, lr=0.02, batch_size=16, gen=gen, step_size=2, gamma=0.5,
                                    transform=lambda batch: augment(batch, ("flip", "crop"), 1.0, gen))
    assert torch.allclose(theta, expected, atol=1e-10)
    plain, _ = train_full(net, theta0, x, y, epochs=3, lr=0.02, batch_size=16, gen=torch.Generator().manual_seed(2))
    assert not torch.allclose(theta, plain)


def test_a_cache_entry_from_before_augmentation_counts_as_unaugmented_and_augmentation_trains_anew(tmp_path):
    cache = tmp_path / "full.json"
    quick = QUICK + ["train.epochs=1", "train.lr=0.01", f"train.cache={cache}"]
    first = full_data_accuracy(load_config(None, quick))
    assert not first["cached"] and first["settings"]["augment"] == [] and first["settings"]["decay_factor"] is None
    entries = json.loads(cache.read_text())
    for name in ("augment", "decay_epochs", "decay_factor"):  # as an older version wrote it
        del entries["digits/mlp/0"]["settings"][name]
    cache.write_text(json.dumps(entries))
    assert full_data_accuracy(load_config(None, quick))["cached"]
    assert full_data_accuracy(load_config(None, quick + ["train.decay_factor=0.5"]))["cached"]  # no decay: the factor is moot
    augmented = full_data_accuracy(load_config(None, quick + ["train.augment=[flip]", "train.decay_epochs=1"]))
    assert not augmented["cached"] and augmented["settings"]["augment"] == ["flip"]
    assert json.loads(cache.read_text())["digits/mlp/0"]["settings"]["decay_epochs"] == 1


def test_augmenting_samples_that_are_not_images_exits_2(tmp_path, capsys):
    write_corpus(tmp_path)
    argv = ["train", *[arg for o in TEXT + [f"dataset.root={tmp_path}", "train.augment=[crop]", f"train.cache={tmp_path / 'c.json'}"]
                       for arg in ("--set", o)]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.augment flips and crops images" in err[0]
    assert not (tmp_path / "c.json").exists()
