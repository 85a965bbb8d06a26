"""AlexCifarNet (distill.models.alexnet)."""

from __future__ import annotations

from distill.models import build_model


def test_alexcifarnet_flattens_64x8x8_for_cifar():
    assert build_model("alexcifarnet", (3, 32, 32), 10).classifier[0].in_features == 64 * 8 * 8
