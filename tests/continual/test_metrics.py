"""The continual-learning metrics (distill.continual.metrics) of a hand-computed matrix."""

import pytest
import torch

from distill.continual.metrics import summary


def test_metrics_of_a_hand_computed_matrix():
    R = torch.tensor([[0.90, 0.10, 0.20], [0.80, 0.95, 0.30], [0.70, 0.85, 0.90]])
    initial = torch.tensor([0.10, 0.15, 0.12])
    figures = summary(R, initial)
    assert figures["acc"] == pytest.approx((0.70 + 0.85 + 0.90) / 3)
    assert figures["bwt"] == pytest.approx(((0.70 - 0.90) + (0.85 - 0.95)) / 2)
    assert figures["fwt"] == pytest.approx(((0.10 - 0.15) + (0.30 - 0.12)) / 2)
