"""GEM's projection (distill.continual.gem): the KKT conditions of its QP, against an independent
solver, with a margin, and without conflict."""

import numpy as np
import pytest
import torch

from distill.continual.gem import project, violates


def conflicting(t: int, p: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random memory gradients G [t, p] and a gradient g that conflicts with some of them."""
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(t, p, generator=gen, dtype=torch.float64)
    g = torch.randn(p, generator=gen, dtype=torch.float64) - 2 * G[0]
    assert violates(g, G)
    return g, G


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("t", [1, 3, 8])
def test_projection_satisfies_the_kkt_conditions_of_the_primal(seed, t):
    """g̃ solves min ½‖g̃ − g‖² s.t. Gg̃ ≥ 0 iff g̃ − g = Gᵀλ with λ ≥ 0, Gg̃ ≥ 0 and λ_k·(Gg̃)_k = 0."""
    g, G = conflicting(t, 30, seed)
    g_tilde = project(g, G, margin=0.0, eps=0.0)
    slack = G @ g_tilde
    assert (slack >= -1e-9).all()
    lam = torch.linalg.lstsq(G.T, (g_tilde - g)[:, None]).solution.squeeze(1)
    assert torch.allclose(G.T @ lam, g_tilde - g, atol=1e-9)
    assert (lam >= -1e-9).all()
    assert torch.allclose(lam * slack, torch.zeros_like(lam), atol=1e-9)


def test_projection_is_the_closest_feasible_gradient():
    """Against an independent solver of the primal QP (scipy's SLSQP)."""
    from scipy.optimize import minimize

    g, G = conflicting(4, 12, seed=7)
    g_np, G_np = g.numpy(), G.numpy()
    result = minimize(
        lambda z: 0.5 * np.sum((z - g_np) ** 2), g_np, jac=lambda z: z - g_np,
        constraints=[{"type": "ineq", "fun": lambda z: G_np @ z, "jac": lambda z: G_np}], method="SLSQP", tol=1e-12,
    )
    assert torch.allclose(project(g, G, eps=0.0), torch.from_numpy(result.x), atol=1e-5)


@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
def test_projected_gradient_conflicts_with_no_stored_task(margin):
    g, G = conflicting(6, 40, seed=3)
    g_tilde = project(g, G, margin=margin, eps=0.0)
    assert ((G @ g_tilde) >= -1e-9).all()
    if margin > 0:  # a margin pushes g̃ further from g than the plain projection
        assert torch.linalg.norm(g_tilde - g) > torch.linalg.norm(project(g, G, eps=0.0) - g)


def test_a_gradient_without_conflict_is_left_alone():
    G = torch.eye(3, 5, dtype=torch.float64)
    g = torch.tensor([1.0, 2.0, 0.0, -4.0, 5.0], dtype=torch.float64)
    assert project(g, G) is g
