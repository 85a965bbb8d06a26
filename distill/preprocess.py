"""Input preprocessing for the kernel methods, fitted on the training split and applied to
every split and to the support set; and the augmentation of KIP's target batches.

``standard``: per-channel standardisation ``x_c ← (x_c − μ_c) / σ_c`` with the training
split's channel means and standard deviations. ``zca``: standardisation, then regularised
ZCA whitening of the flattened images (Nguyen et al. 2021, Sec. 3.1),
``x ← (x − m) W`` with ``W = U (S + ε I)^{-1/2} Uᵀ`` from the eigendecomposition
``C = U S Uᵀ`` of the training covariance and ``ε = zca_reg · tr(C) / d``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import UserError

PREPROCESSING = ("none", "standard", "zca")
AUGMENTATIONS = ("flip", "crop")


@dataclass(frozen=True)
class Preprocessing:
    """A fitted map ``x ↦ ((x − μ) / σ − m) W`` on [N, C, H, W] (or [N, ...]) inputs;
    ``W`` is None without whitening."""

    mean: Tensor  # [C], per channel
    std: Tensor  # [C]
    feature_mean: Tensor | None = None  # [d], of the standardised training images (zca)
    whitening: Tensor | None = None  # [d, d] (zca)

    @classmethod
    def fit(cls, x: Tensor, kind: str, zca_reg: float = 0.1) -> "Preprocessing":
        """Fit ``kind`` (``PREPROCESSING``) on the training inputs ``x`` ([N, C, ...])."""
        channels = x.shape[1]
        if kind == "none":
            return cls(torch.zeros(channels, dtype=x.dtype), torch.ones(channels, dtype=x.dtype))
        per_channel = x.transpose(0, 1).reshape(channels, -1)
        mean, std = per_channel.mean(1), per_channel.std(1).clamp_min(1e-12)
        if kind == "standard":
            return cls(mean, std)
        if kind != "zca":
            raise UserError(f"unknown preprocessing '{kind}'; choose one of: {', '.join(PREPROCESSING)}")
        flat = standardise(x, mean, std).flatten(1).double()
        feature_mean = flat.mean(0)
        centred = flat - feature_mean
        covariance = centred.T @ centred / len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        epsilon = zca_reg * eigenvalues.sum() / len(eigenvalues)  # tr(C) / d
        scale = (eigenvalues.clamp_min(0) + epsilon).rsqrt()
        whitening = (eigenvectors * scale) @ eigenvectors.T
        return cls(mean, std, feature_mean.to(x.dtype), whitening.to(x.dtype))

    def __call__(self, x: Tensor) -> Tensor:
        out = standardise(x, self.mean.to(x), self.std.to(x))
        if self.whitening is None:
            return out
        flat = (out.flatten(1) - self.feature_mean.to(x)) @ self.whitening.to(x)
        return flat.view_as(x)


def standardise(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``(x_c − μ_c) / σ_c`` for every channel ``c`` (dimension 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.view(shape)) / std.view(shape)


def augment(x: Tensor, kinds: tuple[str, ...], fraction: float, generator: torch.Generator) -> Tensor:
    """A copy of the images ``x`` ([N, C, H, W]) in which a random ``fraction`` of the rows
    is augmented: ``flip`` mirrors left-right with probability ½; ``crop`` shifts by up to
    ``p = max(1, H // 8)`` pixels in each direction, filling with zeros (a random crop of
    the zero-padded image, as in the paper's "crops")."""
    if not kinds or fraction == 0:
        return x
    n, _, height, width = x.shape
    chosen = torch.rand(n, generator=generator) < fraction
    out = x.clone()
    if "flip" in kinds:
        flip = (chosen & (torch.rand(n, generator=generator) < 0.5)).to(x.device)
        out[flip] = out[flip].flip(-1)
    if "crop" in kinds:
        pad = max(1, height // 8)
        shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
        shifts[~chosen] = pad  # the identity crop
        padded = torch.nn.functional.pad(out, (pad, pad, pad, pad))
        rows = (shifts[:, :1] + torch.arange(height)).to(x.device)  # [N, H]
        cols = (shifts[:, 1:] + torch.arange(width)).to(x.device)  # [N, W]
        index = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        out = padded[index, channel, rows[:, None, :, None], cols[:, None, None, :]]
    return out
