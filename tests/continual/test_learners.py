"""The learners of a task stream (distill.continual.learners): the task head, EWC's Fisher and
penalty (float64 autograd), and GEM's projection against every memory."""

import torch

from distill.continual.gem import project
from distill.continual.learners import EWC, GEM, TaskHead, batch_fisher, fisher_diagonal, head_of
from distill.functional import FunctionalNet
from distill.models import build_model


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


def test_memory_batch_fisher_is_the_squared_gradient_of_the_mean_loss():
    net = small_net()
    theta = torch.randn(net.num_params, dtype=torch.float64, requires_grad=True)
    x, y = torch.randn(10, 1, 3, 3, dtype=torch.float64), torch.randint(4, (10,))
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(net.logits(theta, x), y), theta)
    assert torch.allclose(batch_fisher(net, theta.detach(), x, y), g**2)
    ewc = EWC(strength=1.0, fisher="memory_batch")
    ewc.end_task(theta.detach(), net, x[:2], y[:2], (x, y))  # the memory, not the task's samples
    assert torch.allclose(ewc.fisher_sum, g**2)


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
