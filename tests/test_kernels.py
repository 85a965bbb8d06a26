"""``distill.kernels`` against independent computations, in float64.

The references are finite random networks written out here (their own forward passes, in the
NTK parameterisation ``σ_w/√fan_in · N(0, 1)`` weights, ``σ_b · N(0, 1)`` biases):

* NNGP: the covariance of the network's output over its random parameters. The readout's
  expectation is taken exactly (``σ_w² ⟨h(x), h(x')⟩/F + σ_b²`` for last hidden layer ``h`` of
  ``F`` features), the hidden layers are sampled: a Monte-Carlo mean over ``draws`` networks.
* NTK: the empirical NTK ``⟨∂f(x)/∂θ, ∂f(x')/∂θ⟩`` of a finite network (``torch.func.jacrev``
  over all its parameters), averaged over ``draws`` networks.

Both are unbiased up to the finite-width correction (order ``1/width``) and carry a
Monte-Carlo error; the tolerance is ``4`` standard errors of the mean (estimated from the
draws) plus ``BIAS / width`` of the largest diagonal entry, and each comparison also shows
the error shrinking from a narrow, few-draw estimate to a wide, many-draw one. Weights are
drawn in float32 and cast (RNG in float64 costs 4x as much; the draws stay standard normal).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck
from torch.func import jacrev

from distill.errors import UserError
from distill.kernels import (KERNELS, KINDS, KernelSpec, conv_kernel, fc_kernel, random_convnets,
                             random_feature_kernel, relu_expectations)

W_STD, B_STD = 2**0.5, 0.1
SIGMAS = 4  # standard errors allowed
BIAS = 8.0  # finite-width bias allowed: BIAS / width of the largest diagonal entry


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These are many small operations: on a shared CPU, torch's threads would wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def normal(*shape, g):
    return torch.randn(*shape, generator=g).double()


# --- finite networks ----------------------------------------------------------------------


def fc_params(d, width, depth, g):
    dims = [d] + [width] * depth + [1]
    return {**{f"w{i}": normal(dims[i + 1], dims[i], g=g) for i in range(depth + 1)},
            **{f"b{i}": normal(dims[i + 1], g=g) for i in range(depth + 1)}}


def fc_hidden(p, x):
    h = x.flatten(1)
    for i in range(len(p) // 2 - 1):
        w = p[f"w{i}"]
        h = torch.relu(h @ w.T * (W_STD / math.sqrt(w.shape[1])) + B_STD * p[f"b{i}"])
    return h


def conv_params(channels, width, depth, features, g):
    ins = [channels] + [width] * (depth - 1)
    return {**{f"w{i}": normal(width, c, 3, 3, g=g) for i, c in enumerate(ins)},
            **{f"b{i}": normal(width, g=g) for i in range(depth)},
            f"w{depth}": normal(1, features, g=g), f"b{depth}": normal(1, g=g)}


def conv_hidden(p, x, pool):
    h = x
    for i in range(len(p) // 2 - 1):
        w = p[f"w{i}"]
        h = torch.relu(F.conv2d(h, w * (W_STD / math.sqrt(w[0].numel())), B_STD * p[f"b{i}"], padding=1))
        h = F.avg_pool2d(h, 2) if pool else h
    return h.flatten(1)


def readout(p, h):
    w, b = p[f"w{len(p) // 2 - 1}"], p[f"b{len(p) // 2 - 1}"]
    return (h @ w.T * (W_STD / math.sqrt(w.shape[1])) + B_STD * b)[:, 0]


def nngp_estimate(hidden):
    return W_STD**2 * hidden @ hidden.T / hidden.shape[1] + B_STD**2


def ntk_estimate(params, hidden_fn, x):
    jac = jacrev(lambda p: readout(p, hidden_fn(p, x)))(params)
    flat = torch.cat([j.flatten(1) for j in jac.values()], 1)
    return flat @ flat.T


def monte_carlo(estimate, draws, seed):
    """Mean and standard error of ``estimate(generator)`` over ``draws`` seeded draws."""
    samples = torch.stack([estimate(gen(seed + s)) for s in range(draws)])
    return samples.mean(0), samples.std(0) / math.sqrt(draws)


def relative_error(estimate, exact):
    return ((estimate - exact).abs().max() / exact.diagonal().max()).item()


def assert_matches(exact, narrow, wide, width):
    """``wide = (mean, se)`` within SIGMAS·se + BIAS/width·max diag of ``exact``; and nearer than ``narrow``."""
    mean, se = wide
    tolerance = SIGMAS * se + BIAS / width * exact.diagonal().max()
    assert ((mean - exact).abs() <= tolerance).all(), (mean - exact).abs() / tolerance
    assert relative_error(mean, exact) < 0.5 * relative_error(narrow[0], exact)


def inputs(*shape, seed):
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64)


# --- closed forms against finite networks ---------------------------------------------------


@pytest.mark.parametrize("depth", [1, 3])
def test_fc_nngp_is_the_output_covariance_of_wide_random_networks(depth):
    x = inputs(5, 12, seed=0)
    x[4] = -x[0]  # nearly antipodal (c = -1 but for the biases)

    def run(width, draws):
        return monte_carlo(lambda g: nngp_estimate(fc_hidden(fc_params(12, width, depth, g), x)), draws, seed=10)

    wide = 4096 if depth == 1 else 1024
    assert_matches(fc_kernel(x, x, depth, kind="nngp"), run(64, 4), run(wide, 32), wide)


@pytest.mark.parametrize("depth", [1, 3])
def test_fc_ntk_is_the_empirical_ntk_of_wide_networks(depth):
    x = inputs(5, 12, seed=1)
    x[4] = -x[0]

    def run(width, draws):
        return monte_carlo(lambda g: ntk_estimate(fc_params(12, width, depth, g), fc_hidden, x), draws, seed=20)

    assert_matches(fc_kernel(x, x, depth), run(32, 4), run(512, 32), 512)


@pytest.mark.parametrize("kind", KINDS)
def test_conv_kernel_is_the_kernel_of_wide_conv_networks(kind):
    x = inputs(4, 2, 6, 6, seed=2)  # padding matters on 6x6: most positions are near an edge
    depth = 2

    def run(width, draws):
        def estimate(g):
            params = conv_params(2, width, depth, width * 36, g)
            if kind == "nngp":
                return nngp_estimate(conv_hidden(params, x, pool=False))
            return ntk_estimate(params, lambda p, t: conv_hidden(p, t, pool=False), x)

        return monte_carlo(estimate, draws, seed=30)

    assert_matches(conv_kernel(x, x, depth, kind=kind), run(8, 4), run(256, 16), 256)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_convnet_kernel_is_the_kernel_of_wide_convnets(kind):
    x = inputs(4, 1, 8, 8, seed=3)
    depth = 3  # 8 -> 4 -> 2 -> 1

    def run(width, draws):
        def estimate(g):
            params = conv_params(1, width, depth, width, g)
            if kind == "nngp":
                return nngp_estimate(conv_hidden(params, x, pool=True))
            return ntk_estimate(params, lambda p, t: conv_hidden(p, t, pool=True), x)

        return monte_carlo(estimate, draws, seed=40)

    assert_matches(conv_kernel(x, x, depth, kind=kind, pool=True), run(8, 4), run(256, 16), 256)


def test_convnet_random_features_concentrate_on_the_exact_kernel():
    """The mean error over three draws, at M·w = 16 and at M·w = 8,192."""
    x = inputs(5, 1, 8, 8, seed=4)
    exact = conv_kernel(x, x, 2, kind="nngp", pool=True)
    errors = {}
    for width, networks in ((8, 2), (128, 64)):
        draws = [random_convnets(1, 2, width, networks, gen(50 + s)).to(torch.float64, "cpu") for s in range(3)]
        errors[width * networks] = sum(relative_error(random_feature_kernel(x, x, nets), exact) for nets in draws) / 3
    assert errors[8192] < 0.05 and errors[8192] < 0.2 * errors[16]


def test_the_arc_cosine_expectations_are_gaussian_integrals():
    """``E φ(u)φ(v)`` and ``E φ'(u)φ'(v)`` against a Monte-Carlo over 2M Gaussian pairs."""
    cov = torch.tensor([[2.0, -0.9], [-0.9, 0.5]], dtype=torch.float64)
    u, v = (torch.linalg.cholesky(cov) @ torch.randn(2, 2_000_000, generator=gen(6), dtype=torch.float64))
    e_phi, e_dphi = relu_expectations(cov[0, 1], cov[0, 0], cov[1, 1])
    assert torch.allclose(e_phi, (u.relu() * v.relu()).mean(), atol=3e-3)
    assert torch.allclose(e_dphi, ((u > 0) & (v > 0)).double().mean(), atol=3e-3)


def test_the_diagonal_is_exact():
    """c = 1 on the diagonal even from rounded dot products: E φφ = Σ/2 and E φ'φ' = 1/2 exactly,
    so float32 K(x, x) matches the diagonal recursion Σ ← σ_w² Σ/2 + σ_b², Θ ← Σ + σ_w² Θ/2."""
    var = torch.tensor([0.3, 1.7, 1e4], dtype=torch.float64)
    e_phi, e_dphi = relu_expectations(var * (1 + 1e-15), var, var)
    assert torch.equal(e_dphi, torch.full_like(var, 0.5)) and torch.allclose(e_phi, var / 2, rtol=1e-14)
    x = inputs(6, 784, seed=7)
    sigma = W_STD**2 * x.square().mean(1) + B_STD**2
    theta = sigma
    for _ in range(3):
        sigma = W_STD**2 * sigma / 2 + B_STD**2
        theta = sigma + W_STD**2 * theta / 2
    assert torch.allclose(fc_kernel(x.float(), x.float().clone(), 3).diagonal().double(), theta, rtol=1e-6)


# --- gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_fc_gradients_match_finite_differences(kind):
    a, b = inputs(3, 4, seed=8).requires_grad_(), inputs(2, 4, seed=9).requires_grad_()
    assert gradcheck(lambda u, v: fc_kernel(u, v, 2, kind=kind), (a, b))
    assert gradgradcheck(lambda u, v: fc_kernel(u, v, 2, kind=kind), (a, b))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("b_std", [0.1, 0.0])
def test_fc_gradients_at_the_kink(kind, b_std):
    """Pairs x' = x (c = 1) and, without biases, x' = -x (c = -1). There the NTK has a cusp; its
    gradient is the symmetric subgradient, which central differences reproduce with steps
    inside the snapping radius (eps = 1e-9, θ < 1.2e-7). K(x, x) of one tensor keeps c = 1
    exactly, so default steps work there."""
    a = inputs(3, 4, seed=10)
    b = inputs(3, 4, seed=11)
    b[0], b[1] = a[0], -a[1]
    a.requires_grad_(), b.requires_grad_()
    kernel = lambda u, v: fc_kernel(u, v, 2, b_std=b_std, kind=kind)  # noqa: E731
    assert gradcheck(kernel, (a, b), eps=1e-9, atol=1e-5)
    assert gradgradcheck(kernel, (a, b), eps=1e-9, atol=1e-5)
    assert gradcheck(lambda u: kernel(u, u), (a,)) and gradgradcheck(lambda u: kernel(u, u), (a,))


def test_at_the_cusp_autograd_is_the_mean_of_the_one_sided_derivatives():
    """Θ(x + h·u, x) along a direction u: the one-sided difference quotients differ (a genuine
    cusp of the NTK), their mean (the central difference) is autograd's gradient; the NNGP has
    no cusp. Likewise at x' = -x without biases."""
    a, u = inputs(1, 6, seed=12), inputs(1, 6, seed=13)
    for target, b_std in ((a, 0.1), (-a, 0.0)):
        for kind, cusp in (("ntk", True), ("nngp", False)):
            k = lambda h: fc_kernel(a + h * u, target, 3, b_std=b_std, kind=kind)[0, 0]  # noqa: E731
            x = a.clone().requires_grad_()
            (grad,) = torch.autograd.grad(fc_kernel(x, target, 3, b_std=b_std, kind=kind)[0, 0], x)
            h = 1e-5
            right, left = (k(h) - k(0)) / h, (k(0) - k(-h)) / h
            assert torch.allclose((right + left) / 2, (grad * u).sum(), rtol=1e-6)
            assert ((right - left).abs() > 0.1) == cusp


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("block", [3, 1000])
def test_conv_gradients_match_finite_differences(pool, block):
    """ConvVec and the exact ConvNet, in one tile and in tiles recomputed in the backward pass
    (second derivatives in gradgradcheck's fast mode: a random projection of the Hessian)."""
    x = inputs(3, 1, 4, 4, seed=14).requires_grad_()
    y = inputs(2, 1, 4, 4, seed=15).requires_grad_()
    kernel = lambda u, v: conv_kernel(u, v, 2, pool=pool, block=block)  # noqa: E731
    assert gradcheck(kernel, (x, y)) and gradgradcheck(kernel, (x, y), fast_mode=True)


def test_random_feature_gradients_match_finite_differences():
    x = inputs(3, 1, 4, 4, seed=16).requires_grad_()
    y = inputs(2, 1, 4, 4, seed=17).requires_grad_()
    nets = random_convnets(1, 2, 4, 3, gen(18)).to(torch.float64, "cpu")
    assert gradcheck(lambda u, v: random_feature_kernel(u, v, nets, block=3), (x, y))


@pytest.mark.parametrize("pool", [False, True])
def test_tiles_change_neither_values_nor_gradients(pool):
    x = inputs(7, 1, 4, 4, seed=19)
    y = inputs(5, 1, 4, 4, seed=20)

    def value_and_gradient(block):
        a = x.clone().requires_grad_()
        k = conv_kernel(a, y, 2, pool=pool, block=block)
        return k, torch.autograd.grad((k * y.flatten(1)[:, 0]).sum(), a)[0]

    whole, tiled = value_and_gradient(1000), value_and_gradient(3)
    assert all(torch.allclose(w, t, rtol=1e-12, atol=1e-12) for w, t in zip(whole, tiled))
    k = conv_kernel(x, x, 2, pool=pool, block=4)
    assert torch.allclose(k, k.T, rtol=1e-12, atol=1e-12)


def test_float32_agrees_with_float64():
    x = inputs(6, 2, 8, 8, seed=21)
    nets = random_convnets(2, 2, 16, 4, gen(22))
    kernels = [lambda t: fc_kernel(t, t, 3), lambda t: fc_kernel(t, t[:4], 1, kind="nngp"),
               lambda t: conv_kernel(t, t, 3), lambda t: conv_kernel(t, t, 2, pool=True, block=5),
               lambda t: random_feature_kernel(t, t, nets.to(t.dtype, "cpu"), block=8)]
    for kernel in kernels:
        k64, k32 = kernel(x), kernel(x.float())
        assert k32.dtype == torch.float32 and k64.dtype == torch.float64
        assert torch.allclose(k32.double(), k64, rtol=1e-5, atol=1e-5 * k64.abs().max().item())


# --- KernelSpec -----------------------------------------------------------------------------


def test_draws_of_exact_kernels_ignore_the_generator():
    x = inputs(3, 1, 8, 8, seed=23)
    for name in ("fc", "conv", "convnet"):
        spec = KernelSpec(name=name, depth=2)
        assert torch.equal(spec.draw(gen(0))(x, x), spec.draw(gen(1))(x, x))
        assert torch.equal(spec.draw(gen(0))(x, x), spec.draw()(x, x))


def test_a_random_feature_draw_is_fixed_within_and_fresh_between_draws():
    x = inputs(3, 1, 8, 8, seed=24)
    spec = KernelSpec(name="convnet_rf", kind="nngp", depth=2, width=4, networks=2)
    kernel = spec.draw(gen(0))
    assert torch.equal(kernel(x, x), kernel(x, x)) and torch.equal(kernel(x, x[:2]), kernel(x, x)[:, :2])
    assert torch.equal(kernel(x, x), spec.draw(gen(0))(x, x))
    assert not torch.allclose(kernel(x, x), spec.draw(gen(1))(x, x))
    assert torch.allclose(kernel(x.float(), x.float()).double(), kernel(x, x), rtol=1e-5)


def test_valid_specs_pass_their_checks():
    for name in KERNELS:
        KernelSpec(name=name, kind="nngp", depth=3).check((1, 8, 8))
    KernelSpec(name="fc").check((784,))
    KernelSpec(name="convnet_rf", kind="nngp").check((3, 32, 32))
    KernelSpec(name="convnet").check((1, 16, 16))


@pytest.mark.parametrize("spec, shape, message", [
    (KernelSpec(name="rbf"), (1, 8, 8), "unknown kernel.name 'rbf'.*choose one of: conv, convnet, convnet_rf, fc"),
    (KernelSpec(kind="gp"), (1, 8, 8), "unknown kernel.kind 'gp'.*choose one of: nngp, ntk"),
    (KernelSpec(depth=0), (1, 8, 8), "kernel.depth must be at least 1"),
    (KernelSpec(name="convnet_rf", kind="nngp", width=0), (1, 8, 8), "kernel.width must be at least 1"),
    (KernelSpec(w_std=0.0), (1, 8, 8), "w_std must be positive"),
    (KernelSpec(b_std=-0.1), (1, 8, 8), "b_std non-negative"),
    (KernelSpec(name="conv"), (50, 300), "conv kernel for images"),
    (KernelSpec(name="convnet"), (1, 28, 28), "614,656 covariances.*convnet_rf.*conv"),
    (KernelSpec(name="convnet", depth=4), (1, 8, 8), "pools 8x8 images below 1x1.*depth <= 3"),
    (KernelSpec(name="convnet_rf", kind="nngp", depth=5), (3, 28, 28), "pools 28x28 images below 1x1.*depth <= 4"),
    (KernelSpec(name="convnet_rf", kind="ntk"), (1, 8, 8), "NNGP only"),
])
def test_impossible_kernels_are_user_errors(spec, shape, message):
    with pytest.raises(UserError, match=message):
        spec.check(shape)


def test_draw_refuses_what_check_refuses():
    with pytest.raises(UserError, match="unknown kernel.name"):
        KernelSpec(name="rbf").draw()
