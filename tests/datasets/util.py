"""Helpers of the dataset tests: pixels back in [0, 1], and damaged bytes."""

from __future__ import annotations

import numpy as np
import torch

from distill.datasets import ArrayDataset


def unnormalise(x: torch.Tensor, data: ArrayDataset) -> torch.Tensor:
    shape = (1, len(data.mean), 1, 1)
    return x * torch.tensor(data.std).view(shape) + torch.tensor(data.mean).view(shape)


def assert_pixels(x: torch.Tensor, data: ArrayDataset, expected: np.ndarray) -> None:
    """``x`` is ``expected`` (in [0, 1]) normalised with the dataset's constants."""
    assert x.dtype == torch.float32
    np.testing.assert_allclose(unnormalise(x, data).numpy(), expected, atol=1e-6)


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
