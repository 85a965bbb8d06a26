"""Task streams: permuted and split tasks, built from small generated datasets."""

import pytest
import torch

from distill.datasets import ArrayDataset
from distill.datasets.streams import load_stream, permute_pixels, permuted_stream, split_stream
from distill.errors import UserError


def generated(num_classes: int, per_class: int = 6) -> ArrayDataset:
    gen = torch.Generator().manual_seed(0)
    train_y = torch.arange(num_classes).repeat(per_class)
    test_y = torch.arange(num_classes).repeat(2)
    return ArrayDataset(
        "generated", torch.randn(len(train_y), 1, 2, 3, generator=gen), train_y, torch.randn(len(test_y), 1, 2, 3, generator=gen),
        test_y, num_classes, (0.0,), (1.0,), tuple(str(c) for c in range(num_classes)),
    )


def test_permuted_tasks_permute_the_pixels_of_real_samples():
    data = generated(3)
    tasks = permuted_stream(data, tasks=4, samples_per_task=5, seed=1)
    assert len(tasks) == 4 and len({tuple(t.permutation.tolist()) for t in tasks}) == 4
    flat = data.train_x.flatten(1)
    for task in tasks:
        assert task.train_x.shape == (5, 1, 2, 3) and torch.equal(task.classes, torch.arange(3))
        for x, y in zip(task.train_x.flatten(1), task.train_y):
            # undo the permutation: the sample is one of the dataset's, with its label
            original = torch.empty_like(x)
            original[task.permutation] = x
            match = (flat == original).all(1).nonzero().flatten()
            assert len(match) == 1 and data.train_y[match[0]] == y
        assert torch.equal(task.test_inputs(), permute_pixels(data.test_x, task.permutation))
        assert torch.equal(task.test_y, data.test_y)


def test_split_tasks_cover_every_class_once_with_local_labels():
    data = generated(6)
    tasks = split_stream(data, tasks=3, classes_per_task=2, samples_per_task=None, seed=0)
    assert sorted(torch.cat([t.classes for t in tasks]).tolist()) == list(range(6))
    for task in tasks:
        assert set(task.train_y.tolist()) == {0, 1} and len(task.train_y) == 12
        original = task.classes[task.train_y]
        flat = data.train_x.flatten(1)
        for x, label in zip(task.train_x.flatten(1), original):
            assert data.train_y[(flat == x).all(1)].item() == label
        assert torch.equal(task.test_inputs(), data.test_x[torch.isin(data.test_y, task.classes)])


def test_a_split_that_does_not_cover_the_classes_is_an_error():
    with pytest.raises(UserError, match="3 tasks x 3 classes = 9 classes, but generated has 10"):
        split_stream(generated(10), tasks=3, classes_per_task=3, samples_per_task=None, seed=0)


def test_more_samples_per_task_than_the_dataset_has_is_an_error():
    with pytest.raises(UserError, match="samples_per_task = 100 exceeds the 18 training samples"):
        permuted_stream(generated(3), tasks=2, samples_per_task=100, seed=0)
    with pytest.raises(UserError, match="samples_per_task = 13 exceeds the 12 training samples"):
        split_stream(generated(4), tasks=2, classes_per_task=2, samples_per_task=13, seed=0)


def test_load_stream_checks_its_name_and_options():
    with pytest.raises(UserError, match="unknown stream 'permuted_mnits'.*permuted_mnist"):
        load_stream("permuted_mnits", 2, 10)
    with pytest.raises(UserError, match="classes_per_task"):
        load_stream("split_cifar100", 20, 2500)
    with pytest.raises(UserError, match="samples_per_task"):
        load_stream("permuted_digits", 2, None)
    dataset, tasks = load_stream("permuted_digits", 2, 50)
    assert dataset.name == "digits" and [len(t.train_y) for t in tasks] == [50, 50]
