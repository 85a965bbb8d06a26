"""AlexCifarNet as in the Dataset Distillation reference code, without local response normalisation."""

from __future__ import annotations

import torch
from torch import nn


def pooled_side(side: int) -> int:
    """The side after a 5×5 'same' convolution and a 3×3 max-pool with stride 2 and padding 1."""
    return (side - 1) // 2 + 1


class AlexCifarNet(nn.Module):
    """Two conv(5×5, 64) – relu – maxpool(3, stride 2) blocks, then fc 384 – relu – fc 192 – relu – fc.

    Each block halves the image side (rounding up): 32×32 inputs give 64×8×8 features,
    as in the reference; any image size works.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        flat = 64 * pooled_side(pooled_side(height)) * pooled_side(pooled_side(width))
        self.features = nn.Sequential(
            nn.Conv2d(channels, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(64, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.classifier = nn.Sequential(
            nn.Linear(flat, 384),
            nn.ReLU(),
            nn.Linear(384, 192),
            nn.ReLU(),
            nn.Linear(192, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))
