import torch

from distill.distiller import EpochBatches, apply_gradients, parameter_groups
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


def test_apply_gradients_chains_through_softplus_and_softmax():
    """The parameters' gradients equal autograd of ⟨dη, η(r)⟩ + ⟨dy, softmax(labels)⟩ + ⟨dx, x⟩."""
    torch.manual_seed(0)
    data = DistilledData.create(4, 2, 2, (1, 2, 2), 3, lr=0.1, soft_labels=torch.randn(4, 3), label_softmax=True)
    result = HyperGradient(loss=torch.tensor(1.0), x=torch.randn_like(data.x), labels=torch.randn(2, 2, 3),
                           lrs=torch.randn(4), final_theta=torch.zeros(1, 1))
    raw, labels = data.raw_lrs.detach().clone().requires_grad_(), data.labels.detach().clone().requires_grad_()
    scalar = (result.lrs * torch.log1p(torch.exp(raw))).sum() + (result.labels * torch.softmax(labels, -1)).sum()
    expected_raw, expected_labels = torch.autograd.grad(scalar, [raw, labels])
    optimizer = torch.optim.SGD(data.parameters(), lr=0.0)
    apply_gradients(data, result, optimizer, learn_data=True)
    assert torch.allclose(data.raw_lrs.grad, expected_raw) and torch.allclose(data.labels.grad, expected_labels)
    assert torch.equal(data.x.grad, result.x)
    apply_gradients(data, result, optimizer, learn_data=False)
    assert data.x.grad is None


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
