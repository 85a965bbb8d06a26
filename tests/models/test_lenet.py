"""LeNet (distill.models.lenet): the reference network's layout."""

from __future__ import annotations

from distill.models import build_model


def test_lenet_matches_reference_parameter_count():
    model = build_model("lenet", (1, 28, 28), 10)
    assert sum(p.numel() for p in model.parameters()) == 61_706
    assert model.fc1.in_features == 16 * 5 * 5
