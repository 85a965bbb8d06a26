"""Episodic memories (distill.continual.memory): a distilled memory of a split task holds its own
classes, and GEM projects against it on the next task."""

import torch

from conftest import TINY_CONTINUAL as TINY
from distill.config import load_config



def test_split_tasks_get_a_distilled_memory_on_their_own_classes(tmp_path):
    """Split streams (split_cifar100's path) on digits: 5 tasks of 2 classes, multi-head."""
    from distill.continual.learners import GEM, head_of, train_task
    from distill.continual.memory import distilled_memory
    from distill.datasets import load_dataset
    from distill.datasets.streams import split_stream
    from distill.models import build_model
    from distill.rundir import RunDir

    config = load_config(None, TINY + ["continual.memory=distilled", "continual.memory_per_task=4", "continual.distill.outer.epochs=2"])
    tasks = split_stream(load_dataset("digits"), tasks=5, classes_per_task=2, samples_per_task=60, seed=0)
    body = build_model("mlp", (1, 8, 8), 10, hidden=[16])
    heads = [head_of(body, task.classes) for task in tasks[:2]]
    memory, data, seconds = distilled_memory(config, heads[0], tasks[0].train_x, tasks[0].train_y, 2, RunDir(tmp_path), seed=0)
    assert memory[0].shape == (4, 1, 8, 8) and sorted(memory[1].tolist()) == [0, 0, 1, 1] and seconds > 0
    gem = GEM(margin=0.5)
    gem.end_task(None, heads[0], None, None, memory)
    theta = 0.1 * torch.randn(heads[1].num_params, generator=torch.Generator().manual_seed(0))
    theta = train_task(theta, heads[1], tasks[1].train_x, tasks[1].train_y, gem, 1, 10, 0.1, torch.Generator().manual_seed(0))
    assert torch.isfinite(theta).all() and gem.projections > 0
