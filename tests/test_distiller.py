import math

import pytest
import torch
import torch.nn.functional as F

from distill.distiller import EpochBatches, OuterSettings, RealData, apply_gradients, distill, parameter_groups
from distill.functional import FunctionalNet
from distill.inits import FixedInit
from distill.models import build_model
from distill.synthetic import DistilledData
from distill.unroll import HyperGradient


def test_each_pass_is_a_permutation_and_batches_are_a_function_of_the_iteration():
    batches = EpochBatches(n=10, batch_size=3, seed=0)
    assert batches.per_epoch == 3
    first_pass = torch.cat([batches.indices(i) for i in range(3)])
    assert len(set(first_pass.tolist())) == 9
    second_pass = torch.cat([batches.indices(i) for i in range(3, 6)])
    assert not torch.equal(first_pass, second_pass)
    fresh = EpochBatches(n=10, batch_size=3, seed=0)
    assert torch.equal(fresh.indices(4), batches.indices(4))
    assert not torch.equal(EpochBatches(n=10, batch_size=3, seed=1).indices(4), batches.indices(4))


def test_batch_larger_than_the_data_is_the_whole_data():
    batches = EpochBatches(n=5, batch_size=1024, seed=0)
    assert batches.per_epoch == 1 and sorted(batches.indices(0).tolist()) == [0, 1, 2, 3, 4]


def soft_label_data_and_gradient() -> tuple[DistilledData, HyperGradient, list[torch.Tensor]]:
    """Small soft-label data (labels through softmax), a random back-gradient, and the
    gradients it implies for ``x``, the raw lrs and the labels: autograd of
    ⟨dη, softplus(r)⟩ + ⟨dy, softmax(labels)⟩, with ``dx`` as it is."""
    torch.manual_seed(0)
    data = DistilledData.create(4, 2, 2, (1, 2, 2), 3, lr=0.1, soft_labels=torch.randn(4, 3), label_softmax=True)
    result = HyperGradient(loss=torch.tensor(1.0), x=torch.randn_like(data.x), labels=torch.randn(2, 2, 3),
                           lrs=torch.randn(4), final_theta=torch.zeros(1, 1))
    raw, labels = data.raw_lrs.detach().clone().requires_grad_(), data.labels.detach().clone().requires_grad_()
    scalar = (result.lrs * torch.log1p(torch.exp(raw))).sum() + (result.labels * torch.softmax(labels, -1)).sum()
    return data, result, [result.x.clone(), *torch.autograd.grad(scalar, [raw, labels])]


def test_apply_gradients_chains_through_softplus_and_softmax():
    """The parameters' gradients equal autograd of ⟨dη, η(r)⟩ + ⟨dy, softmax(labels)⟩ + ⟨dx, x⟩."""
    data, result, (_, expected_raw, expected_labels) = soft_label_data_and_gradient()
    optimizer = torch.optim.SGD(data.parameters(), lr=0.0)
    apply_gradients(data, result, optimizer, learn_data=True)
    assert torch.allclose(data.raw_lrs.grad, expected_raw) and torch.allclose(data.labels.grad, expected_labels)
    assert torch.equal(data.x.grad, result.x)
    apply_gradients(data, result, optimizer, learn_data=False)
    assert data.x.grad is None


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_apply_gradients_rescales_the_whole_gradient_to_max_norm(max_norm):
    """With SGD at lr 1 every parameter moves by ``-g · min(1, c / ‖g‖₂)``, ``‖g‖₂`` taken
    over the images, the raw lrs and the labels together (written out here by hand)."""
    data, result, grads = soft_label_data_and_gradient()
    norm = sum((g**2).sum() for g in grads).sqrt().item()
    scale = min(1.0, max_norm / norm)
    before = [p.detach().clone() for p in (data.x, data.raw_lrs, data.labels)]
    returned = apply_gradients(data, result, torch.optim.SGD(data.parameters(), lr=1.0), True, max_norm)
    assert returned == pytest.approx(norm, rel=1e-6)
    assert (scale < 1) == (max_norm == 0.5)
    for p, b, g in zip((data.x, data.raw_lrs, data.labels), before, grads):
        assert torch.allclose(p.detach(), b - scale * g, atol=1e-6)


def test_label_lr_sets_the_size_of_adams_first_step_on_the_labels():
    """Adam's first step is ``lr · g / (|g| + ε)`` per element (bias-corrected moments are
    ``g`` and ``g²``): with ``label_lr`` the labels move by it, everything else by the outer lr."""
    torch.manual_seed(0)
    data = DistilledData.create(4, 2, 2, (1, 2, 2), 3, lr=0.1, soft_labels=torch.randn(4, 3))
    result = HyperGradient(loss=torch.tensor(1.0), x=torch.randn_like(data.x), labels=torch.randn(2, 2, 3),
                           lrs=torch.randn(4), final_theta=torch.zeros(1, 1))
    before = [p.detach().clone() for p in (data.x, data.labels, data.raw_lrs)]
    optimizer = torch.optim.Adam(parameter_groups(data, label_lr=0.5), lr=0.01, betas=(0.5, 0.999))
    apply_gradients(data, result, optimizer, learn_data=True)
    steps = [(p.detach() - b).abs() for p, b in zip((data.x, data.labels, data.raw_lrs), before)]
    assert torch.allclose(steps[0], torch.full_like(steps[0], 0.01), rtol=1e-3)
    assert torch.allclose(steps[1], torch.full_like(steps[1], 0.5), rtol=1e-3)
    assert torch.allclose(steps[2], torch.full_like(steps[2], 0.01), rtol=1e-3)


def test_without_label_lr_or_learned_labels_there_is_one_group():
    soft = DistilledData.create(4, 2, 2, (1, 2, 2), 3, lr=0.1, soft_labels=torch.randn(4, 3))
    hard = DistilledData.create(4, 2, 2, (1, 2, 2), 3, lr=0.1)
    assert len(parameter_groups(soft, None)) == 1 and len(parameter_groups(hard, 0.5)) == 1


def _reference_lenet(theta, x, num_classes):
    """LeNet written out with ``F.conv2d`` on slices of the flat ``θ`` (12×12 inputs: both
    convolutions pad by 2), independent of ``distill.models`` and ``functional_call``."""
    shapes = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 144), (120,), (84, 120), (84,), (num_classes, 84), (num_classes,)]
    chunks = torch.split(theta, [math.prod(s) for s in shapes])
    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = (c.view(s) for c, s in zip(chunks, shapes))
    h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=2)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2, padding=2)), 2)
    h = F.relu(h.flatten(1) @ w3.T + b3)
    h = F.relu(h @ w4.T + b4)
    return h @ w5.T + b5


def test_outer_loop_equals_a_literal_algorithm_1_in_float64(tmp_path):
    """Six outer iterations of ``distill`` (LeNet, fixed init, T = 2 steps × 2 epochs, real
    batches of 160 so the outer loss runs in micro-batches, a decay of the outer lr) end
    with the same data and learning rates as Wang et al.'s Algorithm 1 written out with
    plain autograd through the whole unroll, ``torch.optim.Adam`` and ``StepLR``."""
    torch.manual_seed(0)
    classes, shape = 4, (1, 12, 12)
    settings = OuterSettings(epochs=3, decay_epochs=1, batch_size=160, lr=0.01, betas=(0.5, 0.999), decay_factor=0.5,
                             log_every=100, checkpoint_every=100)
    net = FunctionalNet.of(build_model("lenet", shape, classes).double())
    real = RealData(torch.randn(320, *shape, dtype=torch.float64), torch.randint(0, classes, (320,)),
                    torch.randn(8, *shape, dtype=torch.float64), torch.randint(0, classes, (8,)))
    data = DistilledData.create(8, 2, 2, shape, classes, lr=0.02).double()
    theta0 = 0.2 * torch.randn(net.num_params, dtype=torch.float64)
    x0 = data.x.detach().clone()
    x, raw = x0.clone().requires_grad_(), data.raw_lrs.detach().clone().requires_grad_()
    labels = data.labels.clone()

    distill(settings, data, net, FixedInit(net, "xavier", 1.0, 0, theta=theta0), real)  # run=None: in memory, no files
    assert not list(tmp_path.iterdir())

    optimizer = torch.optim.Adam([x, raw], lr=0.01, betas=(0.5, 0.999))
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    batches = EpochBatches(320, 160, settings.seed)
    for iteration in range(6):
        theta = theta0.clone().requires_grad_()
        lrs = F.softplus(raw)
        for t in range(4):
            inner = F.cross_entropy(_reference_lenet(theta, x[t % 2], classes), labels[t % 2])
            (g,) = torch.autograd.grad(inner, theta, create_graph=True)
            theta = theta - lrs[t] * g
        idx = batches.indices(iteration)
        outer = F.cross_entropy(_reference_lenet(theta, real.train_x[idx], classes), real.train_y[idx])
        optimizer.zero_grad()
        outer.backward()
        optimizer.step()
        schedule.step()

    assert (x - x0).abs().max() > 1e-3
    torch.testing.assert_close(data.x.detach(), x.detach(), rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(data.raw_lrs.detach(), raw.detach(), rtol=1e-7, atol=1e-9)
