"""ConvNet (distill.models.convnet): width, depth and its normalisation."""

from __future__ import annotations

import torch

from distill.models import build_model


def test_convnet_options():
    model = build_model("convnet", (3, 32, 32), 10, width=16, depth=2)
    assert model.classifier.in_features == 16 * 8 * 8
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_convnet_instance_norm_is_groupnorm_per_channel():
    norm = build_model("convnet", (3, 32, 32), 10).features[1]
    assert isinstance(norm, torch.nn.GroupNorm) and norm.num_groups == norm.num_channels == 128
