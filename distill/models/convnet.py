"""The ConvNet of dataset condensation (Zhao, Mopuri & Bilen, 2021)."""

from __future__ import annotations

import torch
from torch import nn

from distill.errors import UserError, unknown
from distill.models.layers import BatchStatNorm2d, GroupNorm2d

NORMS = ("none", "instance", "batch")


def norm_layer(norm: str, width: int) -> nn.Module:
    """Instance norm as GroupNorm with one channel per group (as Zhao et al.), or batch norm on batch statistics."""
    if norm == "instance":
        return GroupNorm2d(width, width)
    if norm == "batch":
        return BatchStatNorm2d(width)
    return nn.Identity()


class ConvNet(nn.Module):
    """``depth`` blocks of conv(3×3, ``width``, padding 1) – norm – relu – avgpool 2, then a linear classifier.

    ``norm='batch'`` always normalises with the statistics of the batch it is given
    (``BatchStatNorm2d``): no running averages are kept or updated, so the model
    stays a pure function of its parameters under ``functional_call``, ``vmap`` and
    double backward, and trains and evaluates the same way.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise unknown("convnet norm", norm, NORMS)
        if width < 1 or depth < 1:
            raise UserError(f"convnet width and depth must be at least 1; got width={width}, depth={depth}")
        channels, height, image_width = input_shape
        out_h, out_w = height // 2**depth, image_width // 2**depth
        if out_h < 1 or out_w < 1:
            raise UserError(
                f"convnet depth {depth} halves {height}x{image_width} images below 1x1; "
                f"use depth <= {min(height, image_width).bit_length() - 1}"
            )
        layers: list[nn.Module] = []
        for block in range(depth):
            in_channels = channels if block == 0 else width
            conv = nn.Conv2d(in_channels, width, 3, padding=1)
            layers += [conv, norm_layer(norm, width), nn.ReLU(), nn.AvgPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * out_h * out_w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))
