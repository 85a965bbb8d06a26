import pytest
import torch

from distill.functional import FunctionalNet
from distill.inits import SCHEMES, FixedInit, RandomInit, init_weights, make_sampler
from distill.seeds import generator
from distill.models import build_model


@pytest.fixture
def net():
    return FunctionalNet.of(build_model("lenet", (1, 8, 8), 10))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_draws_a_finite_seeded_vector(net, scheme):
    a = init_weights(net, scheme, 1.0, generator(0, 1))
    b = init_weights(net, scheme, 1.0, generator(0, 1))
    c = init_weights(net, scheme, 1.0, generator(0, 2))
    assert a.shape == (net.num_params,) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_xavier_statistics_and_zero_biases(net):
    params = net.unflatten(init_weights(net, "xavier", 1.0, generator(0)))
    w = params["fc1.weight"]
    fan_out, fan_in = w.shape
    assert w.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05)
    assert torch.equal(params["fc1.bias"], torch.zeros_like(params["fc1.bias"]))


def test_norm_layers_start_as_identity():
    net = FunctionalNet.of(build_model("convnet", (1, 8, 8), 10, width=4, depth=1, norm="batch"))
    params = net.unflatten(init_weights(net, "kaiming", 0.0, generator(0)))
    assert torch.equal(params["features.1.weight"], torch.ones(4))
    assert torch.equal(params["features.1.bias"], torch.zeros(4))


def test_model_parameters_are_untouched(net):
    before = [p.clone() for p in net.module.parameters()]
    init_weights(net, "orthogonal", 1.0, generator(0))
    assert all(torch.equal(p, q) for p, q in zip(net.module.parameters(), before))


def test_fixed_init_is_one_vector_for_training_and_evaluation(net):
    fixed = FixedInit(net, "xavier", 1.0, seed=3)
    assert torch.equal(fixed.sample(4, 0), fixed.sample(1, 99))
    assert torch.equal(fixed.held_out(200), fixed.theta[None])
    restored = FixedInit(net, "xavier", 1.0, seed=999, theta=fixed.state_dict()["theta"])
    assert torch.equal(restored.theta, fixed.theta)


def test_random_init_is_reproducible_per_iteration_and_disjoint_from_evaluation(net):
    sampler = RandomInit(net, "xavier", 1.0, seed=0)
    a, b = sampler.sample(3, 7), sampler.sample(3, 7)
    assert torch.equal(a, b)
    assert not torch.equal(sampler.sample(3, 8), a)
    assert len({tuple(r[:5].tolist()) for r in a}) == 3
    held = sampler.held_out(5)
    train_rows = torch.cat([sampler.sample(3, i) for i in range(20)])
    assert not any(torch.equal(h, t) for h in held for t in train_rows)


def test_draws_are_made_on_the_cpu_whatever_device_the_model_is_on():
    """The seeded generator is a CPU one; a model on another device (here 'meta') must not matter."""
    module = build_model("lenet", (1, 8, 8), 10)
    expected = init_weights(FunctionalNet.of(module), "xavier", 1.0, generator(0))
    on_meta = init_weights(FunctionalNet.of(module.to("meta")), "xavier", 1.0, generator(0))
    assert on_meta.device.type == "cpu" and torch.equal(on_meta, expected)


def test_pool_init_samples_training_networks_and_holds_out_the_rest():
    pool = torch.arange(10.0)[:, None].repeat(1, 3)  # row i is network i
    sampler = make_sampler("pretrained_random", None, "xavier", 1.0, seed=0, pool=pool, train_networks=7)
    draws = [sampler.sample(4, i) for i in range(30)]
    assert torch.equal(draws[5], sampler.sample(4, 5))
    ids = [set(d[:, 0].long().tolist()) for d in draws]
    assert all(len(s) == 4 and s <= set(range(7)) for s in ids)  # without replacement, training part only
    assert set().union(*ids) == set(range(7))
    assert sampler.held_out(100)[:, 0].tolist() == [7, 8, 9] and sampler.held_out(2)[:, 0].tolist() == [7, 8]


def test_pretrained_fixed_is_one_pool_network_kept_in_the_checkpoint(net):
    pool = torch.randn(3, net.num_params)
    sampler = make_sampler("pretrained_fixed", net, "xavier", 1.0, seed=0, pool=pool, network=2)
    assert torch.equal(sampler.sample(4, 0), pool[2][None]) and torch.equal(sampler.held_out(9), pool[2][None])
    restored = make_sampler("pretrained_fixed", net, "xavier", 1.0, seed=0, state=sampler.state_dict(), pool=pool, network=0)
    assert torch.equal(restored.theta, pool[2])
