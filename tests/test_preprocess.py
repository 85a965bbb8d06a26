"""Preprocessing for the kernel methods: standardisation and ZCA against their defining
properties, and the target-batch augmentations against explicit flips and shifts."""

import pytest
import torch

from distill.errors import UserError
from distill.preprocess import Preprocessing, augment


def images(n=400, channels=2, side=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(channels * side * side, channels * side * side, generator=gen, dtype=torch.float64)
    flat = torch.randn(n, channels * side * side, generator=gen, dtype=torch.float64) @ mixing + 3.0
    return flat.view(n, channels, side, side)


def test_standard_gives_every_channel_of_the_training_split_mean_zero_and_std_one():
    x = images()
    out = Preprocessing.fit(x, "standard")(x)
    per_channel = out.transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(2, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(per_channel.std(1), torch.ones(2, dtype=torch.float64), atol=1e-10)


def test_zca_whitens_the_training_split_and_its_regulariser_shrinks_the_spectrum():
    x = images()
    white = Preprocessing.fit(x, "zca", zca_reg=1e-9)(x).flatten(1)
    covariance = (white - white.mean(0)).T @ (white - white.mean(0)) / len(white)
    assert torch.allclose(covariance, torch.eye(32, dtype=torch.float64), atol=1e-5)
    # with ε = zca_reg · tr(C)/d the whitened covariance has eigenvalues s / (s + ε) < 1
    flat = Preprocessing.fit(x, "standard")(x).flatten(1)
    c = (flat - flat.mean(0)).T @ (flat - flat.mean(0)) / len(flat)
    s = torch.linalg.eigvalsh(c)
    eps = 0.1 * s.sum() / len(s)
    reg = Preprocessing.fit(x, "zca", zca_reg=0.1)(x).flatten(1)
    reg_c = (reg - reg.mean(0)).T @ (reg - reg.mean(0)) / len(reg)
    assert torch.allclose(torch.linalg.eigvalsh(reg_c), (s / (s + eps)).sort().values, atol=1e-8)


def test_zca_is_symmetric_so_whitened_images_stay_close_to_the_originals():
    """ZCA (unlike PCA whitening) is the symmetric W = U S^-½ Uᵀ."""
    prep = Preprocessing.fit(images(), "zca")
    assert torch.allclose(prep.whitening, prep.whitening.T, atol=1e-10)


def test_none_is_the_identity_and_an_unknown_kind_is_a_user_error():
    x = images(n=10)
    assert torch.equal(Preprocessing.fit(x, "none")(x), x)
    with pytest.raises(UserError, match="unknown preprocessing"):
        Preprocessing.fit(x, "pca")


def test_flip_mirrors_the_chosen_images_left_right():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    out = augment(x, ("flip",), 1.0, torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    many = torch.randn(200, 1, 3, 3)
    flipped = augment(many, ("flip",), 1.0, torch.Generator().manual_seed(1))
    share = sum(not torch.equal(a, b) for a, b in zip(flipped, many)) / 200
    assert 0.35 < share < 0.65


def test_crop_shifts_each_image_with_zero_fill_and_fraction_zero_changes_nothing():
    x = torch.randn(50, 2, 8, 8)
    out = augment(x, ("crop",), 1.0, torch.Generator().manual_seed(0))
    for a, b in zip(out, x):
        found = [(dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)
                 if torch.equal(a, torch.nn.functional.pad(b, (1, 1, 1, 1))[:, 1 + dy : 9 + dy, 1 + dx : 9 + dx])]
        assert found, "every output is the input shifted by at most H/8 = 1 pixel"
    assert torch.equal(augment(x, ("flip", "crop"), 0.0, torch.Generator()), x)
