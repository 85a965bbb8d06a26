"""Resizing and channel conversion at load time (distill.datasets.reshape), on the bundled digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.datasets import ArrayDataset, images, load_dataset, reshape
from distill.errors import UserError

from .util import unnormalise


@pytest.fixture(scope="module")
def digits() -> ArrayDataset:
    return load_dataset("digits")


def test_resize_is_bilinear_interpolation_of_the_pixels(digits):
    """Against an independent bilinear formula: half-pixel centres, output pixel (i, j) of an
    upsampling by 2 samples the source at ((i + 0.5) / 2 − 0.5, (j + 0.5) / 2 − 0.5)."""
    big = load_dataset("digits", resize=16)
    assert big.train_x.shape == (len(digits.train_y), 1, 16, 16) and torch.equal(big.train_y, digits.train_y)
    assert big.mean == digits.mean and big.std == digits.std
    src = unnormalise(digits.train_x[:5], digits)[:, 0].double().numpy()
    coords = np.clip((np.arange(16) + 0.5) / 2 - 0.5, 0, 7)
    lo = np.floor(coords).astype(int)
    hi = np.minimum(lo + 1, 7)
    w = coords - lo
    rows = src[:, lo] * (1 - w)[None, :, None] + src[:, hi] * w[None, :, None]
    expected = rows[:, :, lo] * (1 - w) + rows[:, :, hi] * w
    np.testing.assert_allclose(unnormalise(big.train_x[:5], big)[:, 0].numpy(), expected, atol=1e-5)


def test_shrinking_stays_in_range_and_a_pair_sets_height_and_width():
    small = load_dataset("digits", resize=[4, 2])
    assert small.test_x.shape[1:] == (1, 4, 2)
    pixels = unnormalise(small.train_x, small)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6 and pixels.max() > 0.5


def test_grey_to_three_channels_repeats_the_grey_channel(digits):
    rgb = load_dataset("digits", resize=28, channels=3)
    assert rgb.input_shape == (3, 28, 28) and len(rgb.mean) == len(rgb.std) == 3
    assert torch.equal(rgb.train_x[:, 0], rgb.train_x[:, 2])


def test_rgb_to_grey_is_luma_normalised_with_train_statistics():
    rng = np.random.default_rng(1)
    pixels = rng.random((6, 3, 2, 2), dtype=np.float32)
    arrays = images.ImageArrays(pixels, np.arange(6), pixels[:2], np.arange(2), (0.5,) * 3, (0.2,) * 3, ("a",) * 6)
    grey = reshape.reshape_images(arrays, channels=1)
    expected = 0.299 * pixels[:, 0] + 0.587 * pixels[:, 1] + 0.114 * pixels[:, 2]
    np.testing.assert_allclose(grey.train_x[:, 0], expected, rtol=1e-6)
    assert grey.mean == pytest.approx((expected.mean(),)) and grey.std == pytest.approx((expected.std(),))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"resize": 0}, "dataset.resize must be a positive integer or \\[height, width\\]; got 0"),
        ({"resize": [28]}, "dataset.resize must be"),
        ({"channels": "rgb"}, "dataset.channels must be 1 \\(grey\\) or 3 \\(RGB\\)"),
        ({"channels": 2}, "dataset.channels must be 1 \\(grey\\) or 3 \\(RGB\\); got 2"),
        ({"size": 28}, "takes only the options resize, channels, normalise; got: size"),
    ],
)
def test_bad_resize_and_channel_options(options, message):
    with pytest.raises(UserError, match=message):
        load_dataset("digits", **options)


def test_two_channel_images_cannot_become_three():
    arrays = images.ImageArrays(np.zeros((1, 2, 2, 2), np.float32), np.zeros(1), np.zeros((1, 2, 2, 2), np.float32),
                                np.zeros(1), (0.5,) * 2, (0.2,) * 2, ("a",))
    with pytest.raises(UserError, match="cannot turn 2-channel images into 3 channels"):
        reshape.reshape_images(arrays, channels=3)


def test_normalise_false_keeps_the_pixels_in_unit_range(digits):
    raw = load_dataset("digits", normalise=False)
    assert raw.mean == (0.0,) and raw.std == (1.0,)
    np.testing.assert_allclose(raw.train_x.numpy(), unnormalise(digits.train_x, digits).numpy(), atol=1e-6)
    assert raw.train_x.min() == 0 and raw.train_x.max() == 1


def test_normalise_must_be_a_boolean():
    with pytest.raises(UserError, match="dataset.normalise must be true or false, got 'no'"):
        load_dataset("digits", normalise="no")


def test_a_stream_reads_its_dataset_with_the_options():
    from distill.datasets.streams import load_stream

    dataset, tasks = load_stream("permuted_digits", 2, 50, normalise=False)
    assert dataset.mean == (0.0,) and 0 <= tasks[1].train_x.min() and tasks[1].train_x.max() <= 1
