"""GEM's projection (KKT conditions of the QP), the metrics (a hand-computed matrix),
EWC's Fisher and penalty (float64 autograd), the task head."""

import numpy as np
import pytest
import torch

from distill.continual.gem import project, violates
from distill.continual.learners import EWC, GEM, TaskHead, fisher_diagonal, head_of
from distill.continual.metrics import summary
from distill.functional import FunctionalNet
from distill.models import build_model


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


def test_metrics_of_a_hand_computed_matrix():
    R = torch.tensor([[0.90, 0.10, 0.20], [0.80, 0.95, 0.30], [0.70, 0.85, 0.90]])
    initial = torch.tensor([0.10, 0.15, 0.12])
    figures = summary(R, initial)
    assert figures["acc"] == pytest.approx((0.70 + 0.85 + 0.90) / 3)
    assert figures["bwt"] == pytest.approx(((0.70 - 0.90) + (0.85 - 0.95)) / 2)
    assert figures["fwt"] == pytest.approx(((0.10 - 0.15) + (0.30 - 0.12)) / 2)


def small_net(classes: torch.Tensor | None = None) -> FunctionalNet:
    torch.manual_seed(0)
    body = build_model("mlp", (1, 3, 3), 4, hidden=[5]).double()
    return head_of(body, torch.arange(4) if classes is None else classes)


def test_task_head_restricts_logits_and_keeps_the_body_weights():
    body = build_model("mlp", (1, 3, 3), 6, hidden=[5])
    head = FunctionalNet.of(TaskHead(body, torch.tensor([4, 1])))
    body_net = FunctionalNet.of(body)
    theta = torch.randn(body_net.num_params)
    x = torch.randn(7, 1, 3, 3)
    assert head.num_params == body_net.num_params
    assert torch.allclose(head.logits(theta, x), body_net.logits(theta, x)[:, [4, 1]])


def test_fisher_is_the_mean_squared_per_sample_gradient():
    net = small_net()
    theta = torch.randn(net.num_params, dtype=torch.float64)
    x, y = torch.randn(9, 1, 3, 3, dtype=torch.float64), torch.randint(4, (9,))
    expected = torch.zeros_like(theta)
    for i in range(9):
        t = theta.clone().requires_grad_()
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(net.logits(t, x[i : i + 1]), y[i : i + 1]), t)
        expected += g**2 / 9
    assert torch.allclose(fisher_diagonal(net, theta, x, y), expected)


def test_ewc_adds_the_gradient_of_its_penalty():
    net = small_net()
    ewc = EWC(strength=3.0)
    anchors, fishers = [], []
    for task in range(2):
        anchor = torch.randn(net.num_params, dtype=torch.float64)
        x, y = torch.randn(6, 1, 3, 3, dtype=torch.float64), torch.randint(4, (6,))
        ewc.end_task(anchor, net, x, y, None)
        anchors.append(anchor)
        fishers.append(fisher_diagonal(net, anchor, x, y))
    theta = torch.randn(net.num_params, dtype=torch.float64, requires_grad=True)
    penalty = 0.5 * 3.0 * sum((f * (theta - a) ** 2).sum() for f, a in zip(fishers, anchors))
    (expected,) = torch.autograd.grad(penalty, theta)
    g = torch.randn(net.num_params, dtype=torch.float64)
    assert torch.allclose(ewc.adjust(theta.detach(), g), g + expected)


def test_gem_projects_against_the_gradients_of_every_memory():
    net = small_net()
    gem = GEM(margin=0.0)
    memories = [(torch.randn(4, 1, 3, 3, dtype=torch.float64), torch.randint(4, (4,))) for _ in range(3)]
    for memory in memories:
        gem.end_task(None, net, None, None, memory)
    theta = torch.randn(net.num_params, dtype=torch.float64)
    G = []
    for x, y in memories:
        t = theta.clone().requires_grad_()
        G.append(torch.autograd.grad(torch.nn.functional.cross_entropy(net.logits(t, x), y), t)[0])
    G = torch.stack(G)
    g = -G.sum(0)
    assert torch.allclose(gem.adjust(theta, g), project(g, G, margin=0.0))
    assert gem.projections == 1
