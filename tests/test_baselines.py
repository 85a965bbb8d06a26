"""The baselines' math (distill.baselines): each selection checked against its definition, kNN
against brute force, the learning-rate grid search; their run directories are tests/methods/test_baseline.py's."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distill import baselines as B
from distill.errors import UserError
from distill.functional import FunctionalNet
from distill.models import build_model


def blobs(n_per_class=30, classes=3, shape=(1, 2, 2), seed=0):
    """Gaussian blobs around well-separated class means."""
    gen = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(classes, *shape, generator=gen)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centres[y] + torch.randn(len(y), *shape, generator=gen)
    perm = torch.randperm(len(y), generator=gen)
    return x[perm], y[perm]


def test_random_real_takes_distinct_real_samples_of_each_class_in_round_robin_order():
    x, y = blobs()
    chosen, labels = B.random_real(x, y, 4, 3, torch.Generator().manual_seed(1))
    assert chosen.shape == (12, 1, 2, 2)
    assert labels.tolist() == [0, 1, 2] * 4
    rows = [torch.nonzero((x == c).flatten(1).all(1)).flatten() for c in chosen]
    assert all(len(r) == 1 for r in rows)  # every sample is a row of x
    indices = torch.cat(rows)
    assert len(set(indices.tolist())) == 12
    assert torch.equal(y[indices], labels)


def test_average_real_is_the_class_mean_repeated():
    x, y = blobs()
    means, labels = B.average_real(x, y, 2, 3)
    xn, yn = x.numpy(), y.numpy()
    for i, c in enumerate(labels.tolist()):
        assert np.allclose(means[i].numpy(), xn[yn == c].mean(0), atol=1e-6)


def test_kmeans_centroids_are_fixed_points_of_lloyds_algorithm():
    """At convergence every centroid is the mean of the class samples nearest to it."""
    x, y = blobs(n_per_class=40)
    centroids, labels = B.kmeans_centroids(x, y, 3, 3, seed=0)
    for c in range(3):
        points = x[y == c].flatten(1).double().numpy()
        mine = centroids[labels == c].flatten(1).double().numpy()
        nearest = ((points[:, None] - mine[None]) ** 2).sum(-1).argmin(1)
        for j in range(3):
            assert np.allclose(mine[j], points[nearest == j].mean(0), atol=1e-4)


def brute_force_knn(mx, my, x, y, k, p):
    d = (np.abs(x[:, None] - mx[None]) ** p).sum(-1)
    votes = my[np.argsort(d, axis=1, kind="stable")[:, :k]]
    predicted = np.array([np.bincount(v, minlength=my.max() + 1).argmax() for v in votes])
    return (predicted == y).mean()


@pytest.mark.parametrize("k, distance", B.KNN_GRID)
def test_knn_accuracy_matches_brute_force(k, distance):
    x, y = blobs(n_per_class=20, classes=4, shape=(1, 3, 3), seed=2)
    x = x + 2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))  # overlap: not every answer right
    mx, my, tx, ty = x[:24], y[:24], x[24:], y[24:]
    expected = brute_force_knn(mx.flatten(1).numpy(), my.numpy(), tx.flatten(1).numpy(), ty.numpy(), k, B.MINKOWSKI_P[distance])
    assert 0.2 < expected < 1
    assert B.knn_accuracy(mx, my, tx, ty, k, distance) == pytest.approx(expected)


def test_training_data_keeps_samples_labels_and_learning_rates():
    x, labels = torch.randn(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    lrs = torch.tensor([1e-3, 0.3, 0.01, 0.1])
    data = B.training_data(x, labels, 2, lrs, 3)
    assert data.x.shape == (2, 3, 1, 2, 2) and torch.equal(data.x.reshape(6, 1, 2, 2), x)
    assert torch.equal(data.labels.flatten(), labels)
    assert torch.allclose(data.lrs(), lrs, rtol=1e-5)
    with pytest.raises(UserError):
        B.training_data(x, labels, 4, lrs, 3)


def test_schedules_cover_the_grid_and_the_learned_rates():
    learned = torch.tensor([0.1, 0.2, 0.3, 0.4])
    cells = B.schedules(2, [0.01, 0.1], [1, 3], learned)
    assert cells[0].lr is None and cells[0].epochs == 2 and torch.equal(cells[0].lrs, learned)
    assert [(c.lr, c.epochs, len(c.lrs)) for c in cells[1:]] == [(0.01, 1, 2), (0.1, 1, 2), (0.01, 3, 6), (0.1, 3, 6)]


def manual_accuracy(net, theta, x_set, y_set, steps, lrs, x, y):
    """Train one network by plain autograd, step t on batch t mod S, and test it."""
    xs, ys = x_set.reshape(steps, -1, *x_set.shape[1:]), y_set.reshape(steps, -1)
    for t, lr in enumerate(lrs):
        theta = theta.detach().requires_grad_()
        loss = F.cross_entropy(net.logits(theta, xs[t % steps]), ys[t % steps])
        theta = theta - lr * torch.autograd.grad(loss, theta)[0]
    return (net.logits(theta.detach(), x).argmax(-1) == y).float().mean().item()


def test_pooled_accuracies_train_network_i_on_set_i_mod_r():
    torch.manual_seed(0)
    net = FunctionalNet.of(build_model("mlp", (1, 2, 2), 3, hidden=[6]))
    x, y = blobs()
    sets = [B.random_real(x, y, 2, 3, torch.Generator().manual_seed(s)) for s in range(2)]
    thetas = 0.5 * torch.randn(5, net.num_params)
    lrs = torch.tensor([0.5, 0.2, 0.4, 0.1])
    result = B.pooled_accuracies(net, sets, 2, lrs, 3, thetas, x, y, batch_size=7)
    expected = [manual_accuracy(net, thetas[i], *sets[i % 2], 2, lrs, x, y) for i in range(5)]
    assert result.tolist() == pytest.approx(expected, abs=1e-6)


def test_grid_search_prefers_a_learning_rate_that_learns():
    torch.manual_seed(0)
    net = FunctionalNet.of(build_model("mlp", (1, 2, 2), 3, hidden=[8]))
    x, y = blobs()
    sets = [B.random_real(x, y, 3, 3, torch.Generator().manual_seed(0))]
    thetas = 0.3 * torch.randn(4, net.num_params)
    cell, grid = B.grid_search(net, sets, 1, B.schedules(1, [1e-6, 0.3], [5]), 3, thetas, x, y, 64)
    assert cell.lr == 0.3 and len(grid) == 2
    assert grid[1]["val_acc"] > grid[0]["val_acc"] + 0.2


def test_grid_edge_names_the_edges_the_chosen_cell_lies_on():
    lrs, epochs = [0.01, 0.1, 0.3], [1, 3, 5]
    assert B.grid_edge(B.Schedule(0.1, 3, torch.zeros(3)), lrs, epochs) is None
    assert "largest epoch count (5)" in B.grid_edge(B.Schedule(0.1, 5, torch.zeros(5)), lrs, epochs)
    both = B.grid_edge(B.Schedule(0.01, 5, torch.zeros(5)), lrs, epochs)
    assert "largest epoch count" in both and "smallest learning rate (0.01)" in both
    assert "largest learning rate (0.3)" in B.grid_edge(B.Schedule(0.3, 1, torch.zeros(1)), lrs, epochs)
    assert B.grid_edge(B.Schedule(None, 5, torch.zeros(5)), lrs, epochs) is None  # learned rates: no edge


def test_best_sets_keep_the_best_fraction_best_first():
    sets = [(torch.full((1,), float(i)), torch.zeros(1)) for i in range(5)]
    kept = B.best_sets(sets, [0.3, 0.9, 0.1, 0.5, 0.8], keep=0.5)
    assert [int(s[0]) for s in kept] == [1, 4, 3]  # ⌈0.5 · 5⌉ = 3 sets


def test_per_class_needs_a_multiple_of_the_classes():
    assert B.per_class(20, 10) == 2
    with pytest.raises(UserError, match="multiple"):
        B.per_class(15, 10)
