"""ResNet-18 (distill.models.resnet): the standard CIFAR network, and its norms."""

from __future__ import annotations

import pytest
import torch

from distill.errors import UserError
from distill.models import build_model


def test_resnet18_is_the_standard_cifar_network():
    """11,173,962 parameters for 10 classes: torchvision's resnet18 with a 3x3 stem and no max-pool."""
    model = build_model("resnet18", (3, 32, 32), 10)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]  # GroupNorm2d is one
    assert {(m.num_groups, m.num_channels) for m in norms} == {(32, 64), (32, 128), (32, 256), (32, 512)}
    narrow = build_model("resnet18", (3, 32, 32), 10, width=20)
    assert {(m.num_groups, m.num_channels) for m in narrow.modules() if isinstance(m, torch.nn.GroupNorm)} == {
        (4, 20), (8, 40), (16, 80), (32, 160)}


def test_resnet18_bad_norm():
    with pytest.raises(UserError, match="unknown resnet18 norm 'layer'"):
        build_model("resnet18", (3, 32, 32), 10, norm="layer")
