"""The continual-learning metrics (distill.continual.metrics) of a hand-computed matrix."""

import pytest
import torch

from distill.continual.metrics import accuracy_after_each_task, summary


def test_metrics_of_a_hand_computed_matrix():
    R = torch.tensor([[0.90, 0.10, 0.20], [0.80, 0.95, 0.30], [0.70, 0.85, 0.90]])
    initial = torch.tensor([0.10, 0.15, 0.12])
    figures = summary(R, initial)
    assert figures["acc"] == pytest.approx((0.70 + 0.85 + 0.90) / 3)
    assert figures["bwt"] == pytest.approx(((0.70 - 0.90) + (0.85 - 0.95)) / 2)
    assert figures["fwt"] == pytest.approx(((0.10 - 0.15) + (0.30 - 0.12)) / 2)


def test_the_accuracy_after_each_task_ends_at_acc():
    R = torch.tensor([[0.90, 0.10, 0.20], [0.80, 0.95, 0.30], [0.70, 0.85, 0.90]])
    rows = accuracy_after_each_task(R, 2)
    assert [r["task"] for r in rows] == [1, 2]
    assert rows[0]["seen_tasks_acc"] == pytest.approx(0.90) and rows[0]["all_tasks_acc"] == pytest.approx(0.40)
    assert rows[1]["seen_tasks_acc"] == pytest.approx(0.875) and rows[1]["all_tasks_acc"] == pytest.approx(2.05 / 3)
    last = accuracy_after_each_task(R, 3)[-1]
    assert last["seen_tasks_acc"] == pytest.approx(summary(R, torch.zeros(3))["acc"]) == pytest.approx(last["all_tasks_acc"])
