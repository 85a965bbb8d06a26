"""LeNet-5 as in the Dataset Distillation reference code (SsnL/dataset-distillation, networks.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.errors import UserError

KERNEL = 5
DESIGN_SIDES = (32, 14)  # the input side of conv1 and conv2 in LeNet-5's 32x32 design


def plan_axis(side: int) -> tuple[tuple[int, int], int]:
    """Paddings of conv1 and conv2 along one spatial axis of length ``side``, and the length after conv2's pool.

    A 5x5 convolution whose input is smaller than in LeNet-5's 32x32 design pads by 2 and
    keeps its size; otherwise it is 'valid', as in the original. Each is followed by a 2x2 max-pool.
    """
    paddings = []
    for design_side in DESIGN_SIDES:
        padding = KERNEL // 2 if side < design_side else 0
        side = (side + 2 * padding - KERNEL + 1) // 2
        paddings.append(padding)
    return (paddings[0], paddings[1]), side


class LeNet(nn.Module):
    """conv(C→6, 5×5) – relu – maxpool 2 – conv(6→16, 5×5) – relu – maxpool 2 – fc 120, 84, classes (relu between).

    On 32×32 inputs both convolutions are 'valid', as in LeNet-5. A convolution whose input
    is smaller than in that design (conv1 below 32, conv2 below 14 along an axis) pads by 2:
    on 28×28 MNIST this is the reference code's ``padding=2`` and gives its 61,706 parameters
    for 10 classes; 16×16 USPS and 8×8 digits work too (any side of at least 4).
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        (pad1_h, pad2_h), out_h = plan_axis(height)
        (pad1_w, pad2_w), out_w = plan_axis(width)
        if out_h < 1 or out_w < 1:
            raise UserError(f"lenet needs images of at least 4x4 pixels; got {height}x{width}")
        self.conv1 = nn.Conv2d(channels, 6, KERNEL, padding=(pad1_h, pad1_w))
        self.conv2 = nn.Conv2d(6, 16, KERNEL, padding=(pad2_h, pad2_w))
        self.fc1 = nn.Linear(16 * out_h * out_w, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
