"""The back-gradient against plain autograd through the whole unroll, in float64."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from distill.functional import FunctionalNet
from distill.models import build_model
from distill.unroll import hypergradient, outer_loss_and_gradient, train

SHAPE, CLASSES = (1, 8, 8), 4


def reference_gradients(module, theta0, x, labels, lrs, real_x, real_y, learn_labels):
    """dL/d(x, labels, lrs) by autograd through all T steps, one model at a time, no vmap."""
    x = x.clone().requires_grad_()
    labels = labels.clone().requires_grad_(learn_labels)
    lrs = lrs.clone().requires_grad_()
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for _, p in module.named_parameters()]

    def as_dict(flat):
        return {n: c.view(s) for n, c, s in zip(names, torch.split(flat, [s.numel() for s in shapes]), shapes)}

    def loss(flat, inputs, targets):
        logits = functional_call(module, as_dict(flat), (inputs,))
        if targets.is_floating_point():
            return -(targets * F.log_softmax(logits, -1)).sum(-1).mean()
        return F.cross_entropy(logits, targets)

    total = 0.0
    for theta in theta0:
        theta = theta.clone().requires_grad_()
        for t in range(len(lrs)):
            s = t % x.shape[0]
            (g,) = torch.autograd.grad(loss(theta, x[s], labels[s]), theta, create_graph=True)
            theta = theta - lrs[t] * g
        total = total + loss(theta, real_x, real_y)
    outer = total / len(theta0)
    wrt = [x, lrs] + ([labels] if learn_labels else [])
    return outer.detach(), torch.autograd.grad(outer, wrt)


def problem(model_name, k, steps=3, epochs=2, per_step=4, soft=False, seed=0):
    torch.manual_seed(seed)
    module = build_model(model_name, SHAPE, CLASSES).double()
    net = FunctionalNet.of(module)
    theta0 = 0.3 * torch.randn(k, net.num_params, dtype=torch.float64)
    x = torch.randn(steps, per_step, *SHAPE, dtype=torch.float64)
    if soft:
        labels = torch.randn(steps, per_step, CLASSES, dtype=torch.float64)
    else:
        labels = torch.randint(CLASSES, (steps, per_step))
    lrs = 0.05 + 0.1 * torch.rand(steps * epochs, dtype=torch.float64)
    real_x = torch.randn(16, *SHAPE, dtype=torch.float64)
    real_y = torch.randint(CLASSES, (16,))
    return module, net, theta0, x, labels, lrs, real_x, real_y


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("mode", ["stored", "recompute"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("model_name", ["lenet", "mlp"])
def test_backgradient_equals_autograd_through_unroll(model_name, k, mode):
    module, net, theta0, x, labels, lrs, real_x, real_y = problem(model_name, k)
    assert len(lrs) >= 5
    before = [p.detach().clone() for p in module.parameters()]

    ours = hypergradient(net, theta0, x, labels, lrs, real_x, real_y, mode=mode)
    loss, (d_x, d_lrs) = reference_gradients(module, theta0, x, labels, lrs, real_x, real_y, False)

    assert torch.allclose(ours.loss, loss, rtol=1e-12)
    assert relative_error(ours.x, d_x) < 1e-6
    assert relative_error(ours.lrs, d_lrs) < 1e-6
    assert ours.labels is None
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), before))


@pytest.mark.parametrize("mode", ["stored", "recompute"])
def test_backgradient_to_learned_soft_labels(mode):
    module, net, theta0, x, labels, lrs, real_x, real_y = problem("mlp", 2, soft=True)
    ours = hypergradient(net, theta0, x, labels, lrs, real_x, real_y, mode=mode, learn_labels=True)
    _, (d_x, d_lrs, d_labels) = reference_gradients(module, theta0, x, labels, lrs, real_x, real_y, True)
    assert relative_error(ours.x, d_x) < 1e-6
    assert relative_error(ours.lrs, d_lrs) < 1e-6
    assert relative_error(ours.labels, d_labels) < 1e-6


@pytest.mark.parametrize("mode", ["stored", "recompute"])
@pytest.mark.parametrize(
    "model_name, options, shape",
    [
        ("convnet", {"width": 8, "depth": 2, "norm": "batch"}, SHAPE),
        # 16x16: on 8x8 the last stage's batch norm sees 1x1 maps of 4 samples, so ill-conditioned
        # that gradients reach 1e8 and float64 round-off alone differs by 1e-4
        ("resnet18", {"width": 2, "norm": "batch"}, (1, 16, 16)),
        ("resnet18", {"width": 2, "norm": "group", "groups": 2}, SHAPE),
    ],
    ids=["convnet-batch", "resnet18-batch", "resnet18-group"],
)
def test_backgradient_with_normalisation_in_the_unroll(model_name, options, shape, mode):
    torch.manual_seed(0)
    module = build_model(model_name, shape, CLASSES, **options).double()
    net = FunctionalNet.of(module)
    theta0 = net.flatten(dict(module.named_parameters())).detach()[None].repeat(2, 1)
    theta0 = theta0 + 0.01 * torch.randn_like(theta0)
    x = torch.randn(3, 4, *shape, dtype=torch.float64)
    labels = torch.randint(CLASSES, (3, 4))
    lrs = torch.full((6,), 0.1, dtype=torch.float64)
    real_x, real_y = torch.randn(8, *shape, dtype=torch.float64), torch.randint(CLASSES, (8,))
    ours = hypergradient(net, theta0, x, labels, lrs, real_x, real_y, mode=mode)
    _, (d_x, d_lrs) = reference_gradients(module, theta0, x, labels, lrs, real_x, real_y, False)
    assert relative_error(ours.x, d_x) < 1e-6
    assert relative_error(ours.lrs, d_lrs) < 1e-6
    assert not list(module.buffers())


def test_train_matches_the_unrolled_final_weights():
    _, net, theta0, x, labels, lrs, real_x, real_y = problem("mlp", 3)
    ours = hypergradient(net, theta0, x, labels, lrs, real_x, real_y, mode="recompute")
    assert torch.allclose(train(net, theta0, x, labels, lrs), ours.final_theta)


def test_unknown_mode_is_rejected():
    _, net, theta0, x, labels, lrs, real_x, real_y = problem("mlp", 1)
    with pytest.raises(ValueError, match="recompute"):
        hypergradient(net, theta0, x, labels, lrs, real_x, real_y, mode="checkpoint")


def whole_batch_loss_and_gradient(module, thetas, x, y):
    """1/K Σ_k ℓ(x, y; θ_k) and its gradient by autograd, the whole batch at once."""
    net = FunctionalNet.of(module)
    thetas = thetas.clone().requires_grad_()
    loss = torch.stack([F.cross_entropy(functional_call(module, net.unflatten(t), (x,)), y) for t in thetas]).mean()
    return loss.detach(), torch.autograd.grad(loss, thetas)[0]


@pytest.mark.parametrize("model_name", ["lenet", "mlp"])
def test_outer_loss_over_micro_batches_equals_the_whole_batch(model_name):
    module, net, theta0, *_, real_x, real_y = problem(model_name, 3)
    loss, d_theta = outer_loss_and_gradient(net, theta0, real_x, real_y, micro_batch=5)  # 16 = 5 + 5 + 5 + 1
    ref_loss, ref_d_theta = whole_batch_loss_and_gradient(module, theta0, real_x, real_y)
    assert torch.allclose(loss, ref_loss, rtol=1e-12)
    assert relative_error(d_theta, ref_d_theta) < 1e-10


def test_batch_statistics_keep_the_outer_batch_whole():
    torch.manual_seed(0)
    module = build_model("convnet", SHAPE, CLASSES, width=8, depth=2, norm="batch").double()
    net = FunctionalNet.of(module)
    assert not net.per_sample
    theta0 = net.flatten(dict(module.named_parameters())).detach()[None].repeat(2, 1)
    theta0 = theta0 + 0.01 * torch.randn_like(theta0)
    real_x, real_y = torch.randn(12, *SHAPE, dtype=torch.float64), torch.randint(CLASSES, (12,))
    loss, d_theta = outer_loss_and_gradient(net, theta0, real_x, real_y, micro_batch=5)
    ref_loss, ref_d_theta = whole_batch_loss_and_gradient(module, theta0, real_x, real_y)
    assert torch.allclose(loss, ref_loss, rtol=1e-12)
    assert relative_error(d_theta, ref_d_theta) < 1e-10
