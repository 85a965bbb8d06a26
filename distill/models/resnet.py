"""ResNet-18 (He et al., 2016) with a CIFAR-style stem, with GroupNorm or BatchNorm.

The variant the Dataset Distillation paper uses for CIFAR-100 continual learning: a 3×3
stride-1 stem without max-pool (so 32×32 and smaller inputs keep their resolution), then
four stages of two basic blocks with ``w, 2w, 4w, 8w`` channels (strides 1, 2, 2, 2),
global average pooling and a linear classifier. A basic block is

    y = relu(n₂(conv₂(relu(n₁(conv₁(x))))) + s(x)),   s = identity, or 1×1 conv + norm when the shape changes

``norm='group'``: GroupNorm (``GroupNorm2d``, elementary ops) with ``gcd(groups, C)`` groups of a ``C``-channel layer (Wu & He's
32 groups where ``C`` allows it; narrower layers fall back to fewer, equal groups). A group
of one channel on a 1×1 map normalises to a constant, so on tiny inputs (8×8 reaches 1×1 in
the last stage) use few ``groups`` or BatchNorm.
``norm='batch'``: ``BatchStatNorm2d``, batch statistics only, exact under double backward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from distill.errors import UserError, unknown
from distill.models.layers import BatchStatNorm2d, GroupNorm2d

NORMS = ("group", "batch")
BLOCKS_PER_STAGE = (2, 2, 2, 2)


def resnet_norm(norm: str, channels: int, groups: int) -> nn.Module:
    if norm == "group":
        return GroupNorm2d(math.gcd(groups, channels), channels)
    return BatchStatNorm2d(channels)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int, norm: str, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = resnet_norm(norm, channels, groups)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = resnet_norm(norm, channels, groups)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), resnet_norm(norm, channels, groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR-style; ``width`` is the stem's channel count (64 in the standard
    network: 11.2M parameters for 10 classes), ``norm`` ``group`` or ``batch``."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, *, width: int = 64, norm: str = "group", groups: int = 32) -> None:
        super().__init__()
        if norm not in NORMS:
            raise unknown("resnet18 norm", norm, NORMS)
        if width < 1 or groups < 1:
            raise UserError(f"resnet18 width and groups must be at least 1; got width={width}, groups={groups}")
        channels = input_shape[0]
        self.stem = nn.Conv2d(channels, width, 3, padding=1, bias=False)
        self.stem_norm = resnet_norm(norm, width, groups)
        blocks: list[nn.Module] = []
        in_channels = width
        for stage, count in enumerate(BLOCKS_PER_STAGE):
            out_channels = width * 2**stage
            for b in range(count):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(in_channels, out_channels, stride, norm, groups))
                in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_norm(self.stem(x)))
        x = self.blocks(x)
        return self.classifier(x.mean(dim=(2, 3)))
