"""The MLP (distill.models.mlp): its hidden layers."""

from __future__ import annotations

import torch

from distill.models import build_model


def test_mlp_hidden_option():
    model = build_model("mlp", (1, 8, 8), 10, hidden=[7])
    assert [layer.out_features for layer in model.modules() if isinstance(layer, torch.nn.Linear)] == [7, 10]
    assert build_model("mlp", (1, 8, 8), 10, hidden=[])(torch.randn(2, 1, 8, 8)).shape == (2, 10)
