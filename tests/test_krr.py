"""Kernel ridge regression, KIP's loss and Label Solve, against independent computations in
float64: explicit linear solves, numpy's least squares and the normal equations."""

import numpy as np
import pytest
import torch

from distill.errors import UserError
from distill.krr import LabelSolve, centred_one_hot, cholesky, kip_loss, krr_accuracy, krr_predict, ridge


def rbf(a, b):
    return torch.exp(-torch.cdist(a.flatten(1), b.flatten(1)).pow(2) / a[0].numel())


def problem(n_s=6, n_t=40, d=5, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x_s = torch.randn(n_s, d, generator=gen, dtype=torch.float64)
    x_t = torch.randn(n_t, d, generator=gen, dtype=torch.float64)
    y_t = torch.randint(classes, (n_t,), generator=gen)
    y_s = centred_one_hot(torch.arange(n_s) % classes, classes, torch.float64)
    return x_s, x_t, y_s, y_t


def test_centred_one_hot_rows_sum_to_zero_and_pick_the_class():
    y = centred_one_hot(torch.tensor([0, 2, 1]), 3)
    assert torch.allclose(y.sum(1), torch.zeros(3), atol=1e-7)
    assert y.argmax(1).tolist() == [0, 2, 1]
    assert y[0].tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3])


def test_krr_prediction_equals_an_explicit_solve():
    x_s, x_t, y_s, _ = problem()
    k_ss, k_ts = rbf(x_s, x_s), rbf(x_t, x_s)
    lam = 1e-3 * torch.trace(k_ss) / len(k_ss)
    expected = k_ts @ torch.linalg.solve(k_ss + lam * torch.eye(len(k_ss), dtype=torch.float64), y_s)
    assert torch.allclose(krr_predict(k_ts, k_ss, y_s, 1e-3), expected, atol=1e-10)
    assert ridge(k_ss, 1e-3).item() == pytest.approx(lam.item())


def test_kip_loss_is_half_the_mean_squared_residual_and_its_gradient_matches_finite_differences():
    x_s, x_t, y_s, y_t = problem()
    labels_t = centred_one_hot(y_t, 3, torch.float64)

    def loss(x):
        return kip_loss(rbf(x_t, x), rbf(x, x), y_s, labels_t, 1e-2)

    k_ss, k_ts = rbf(x_s, x_s), rbf(x_t, x_s)
    lam = 1e-2 * torch.trace(k_ss) / len(k_ss)
    residual = labels_t - k_ts @ torch.linalg.solve(k_ss + lam * torch.eye(len(k_ss), dtype=torch.float64), y_s)
    assert loss(x_s).item() == pytest.approx(0.5 * residual.pow(2).sum().item() / len(y_t), rel=1e-10)
    assert torch.autograd.gradcheck(loss, (x_s.clone().requires_grad_(),))


def test_an_ill_conditioned_system_is_a_user_error_naming_the_ridge():
    x = torch.ones(4, 3, dtype=torch.float32)  # four identical samples: K_ss has rank 1
    k = rbf(x, x) * 1e8
    k[0, 1] = k[1, 0] = 2e8  # not positive semi-definite
    with pytest.raises(UserError, match=r"kip\.reg.*raise kip\.reg"):
        cholesky(k, 1e-9)
    with pytest.raises(UserError, match="non-finite"):
        cholesky(torch.full((2, 2), float("nan")), 1e-6)


def test_krr_accuracy_counts_correct_argmax_predictions_in_blocks():
    x_s, x_t, y_s, y_t = problem(n_s=9, n_t=50)
    k_ss, k_ts = rbf(x_s, x_s), rbf(x_t, x_s)
    expected = (krr_predict(k_ts, k_ss, y_s, 1e-3).argmax(1) == y_t).double().mean().item()
    assert krr_accuracy(rbf, x_s, y_s, x_t, y_t, 1e-3, block=7) == pytest.approx(expected)


def full_matrix(x_s, x_t, reg):
    k_ss, k_ts = rbf(x_s, x_s), rbf(x_t, x_s)
    lam = reg * torch.trace(k_ss) / len(k_ss)
    return (k_ts @ torch.linalg.inv(k_ss + lam * torch.eye(len(k_ss), dtype=torch.float64))).numpy()


@pytest.mark.parametrize("block", [1, 7, 40])
def test_label_solve_in_blocks_equals_numpys_least_squares_on_the_whole_matrix(block):
    x_s, x_t, _, y_t = problem(n_s=6, n_t=40)
    labels_t = centred_one_hot(y_t, 3, torch.float64)
    solver = LabelSolve(rbf(x_s, x_s), 1e-4, 3)
    for start in range(0, 40, block):
        solver.add(rbf(x_t[start : start + block], x_s), labels_t[start : start + block])
    a = full_matrix(x_s, x_t, 1e-4)
    expected, residual, *_ = np.linalg.lstsq(a, labels_t.numpy(), rcond=None)
    assert np.allclose(solver.labels().numpy(), expected, atol=1e-8)
    assert solver.residual() == pytest.approx(residual.sum() / 40, rel=1e-8)
    # the normal equations (first-order optimality): Aᵀ (A y* − y_t) = 0
    assert np.abs(a.T @ (a @ solver.labels().numpy() - labels_t.numpy())).max() < 1e-8


def test_label_solve_gives_the_least_norm_solution_when_the_targets_underdetermine_it():
    x_s, x_t, _, y_t = problem(n_s=8, n_t=3)  # 3 target rows, 8 unknowns per class
    labels_t = centred_one_hot(y_t, 3, torch.float64)
    solver = LabelSolve(rbf(x_s, x_s), 1e-4, 3)
    solver.add(rbf(x_t, x_s), labels_t)
    expected = np.linalg.pinv(full_matrix(x_s, x_t, 1e-4)) @ labels_t.numpy()
    assert np.allclose(solver.labels().numpy(), expected, atol=1e-7)


def test_label_solve_resumes_from_its_factor_exactly():
    x_s, x_t, _, y_t = problem(n_s=5, n_t=30)
    labels_t = centred_one_hot(y_t, 3, torch.float64)
    whole = LabelSolve(rbf(x_s, x_s), 1e-4, 3)
    for start in range(0, 30, 10):
        whole.add(rbf(x_t[start : start + 10], x_s), labels_t[start : start + 10])
    first = LabelSolve(rbf(x_s, x_s), 1e-4, 3)
    first.add(rbf(x_t[:10], x_s), labels_t[:10])
    resumed = LabelSolve(rbf(x_s, x_s), 1e-4, 3, state=first.r.clone(), rows=first.rows)
    for start in range(10, 30, 10):
        resumed.add(rbf(x_t[start : start + 10], x_s), labels_t[start : start + 10])
    assert torch.equal(resumed.labels(), whole.labels())
