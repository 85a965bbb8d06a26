"""The closed-form kernels against independent computations in float64: the empirical NNGP
(the readout's covariance over its weights, from one wide random network's last hidden
layer) and the empirical NTK (Jacobian inner products via torch.func) of wide finite
networks; gradients against finite differences; and the random-feature kernel's spread."""

import math

import pytest
import torch
from torch.func import functional_call, jacrev

from distill.errors import UserError
from distill.kernels import KernelSpec, conv_kernel, fc_kernel

W_STD, B_STD = 2**0.5, 0.1


class FC(torch.nn.Module):
    """Dense, (ReLU, Dense) × depth in the NTK parameterisation."""

    def __init__(self, d, width, depth, gen):
        super().__init__()
        dims = [d] + [width] * depth + [1]
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(dims[i + 1], dims[i], generator=gen, dtype=torch.float64)) for i in range(depth + 1)])
        self.biases = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(dims[i + 1], generator=gen, dtype=torch.float64)) for i in range(depth + 1)])

    def hidden(self, x):
        h = x
        for i in range(len(self.weights) - 1):  # (slicing a ParameterList would copy the parameters)
            w, b = self.weights[i], self.biases[i]
            h = torch.relu(h @ w.T * W_STD / math.sqrt(w.shape[1]) + B_STD * b)
        return h

    def forward(self, x):
        w, b = self.weights[-1], self.biases[-1]
        return (self.hidden(x) @ w.T * W_STD / math.sqrt(w.shape[1]) + B_STD * b)[:, 0]


class ConvVec(torch.nn.Module):
    """depth × (3×3 conv "same", ReLU), flattened readout, NTK parameterisation."""

    def __init__(self, channels, width, depth, side, gen):
        super().__init__()
        ins = [channels] + [width] * (depth - 1)
        self.convs = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(width, c, 3, 3, generator=gen, dtype=torch.float64)) for c in ins])
        self.biases = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(width, generator=gen, dtype=torch.float64)) for _ in ins])
        self.readout = torch.nn.Parameter(torch.randn(width * side * side, generator=gen, dtype=torch.float64))
        self.readout_bias = torch.nn.Parameter(torch.randn((), generator=gen, dtype=torch.float64))

    def hidden(self, x):
        h = x
        for i in range(len(self.convs)):
            w, b = self.convs[i], self.biases[i]
            h = torch.relu(torch.nn.functional.conv2d(h, w * W_STD / math.sqrt(w[0].numel()), B_STD * b, padding=1))
        return h.flatten(1)

    def forward(self, x):
        return self.hidden(x) @ self.readout * W_STD / math.sqrt(len(self.readout)) + B_STD * self.readout_bias


def empirical_nngp(net, x):
    h = net.hidden(x)
    return W_STD**2 * h @ h.T / h.shape[1] + B_STD**2


def empirical_ntk(net, x):
    params = dict(net.named_parameters())
    jac = jacrev(lambda p: functional_call(net, p, (x,)))(params)
    flat = torch.cat([j.reshape(len(x), -1) for j in jac.values()], 1)
    return flat @ flat.T


def relative_error(estimate, exact):
    return ((estimate - exact).abs().max() / exact.diagonal().abs().max()).item()


def mean_over_draws(estimator, make, draws):
    return sum(estimator(make(torch.Generator().manual_seed(s))) for s in range(draws)) / draws


@pytest.mark.parametrize("depth", [1, 3])
def test_fc_nngp_and_ntk_match_wide_random_networks_and_converge_with_width(depth):
    x = torch.randn(5, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[4] = -x[0]  # an antipodal pair, c = -1
    nngp = {width: relative_error(mean_over_draws(lambda n: empirical_nngp(n, x), lambda g: FC(12, width, depth, g), 4),
                                  fc_kernel(x, x, depth, kind="nngp")) for width in (128, 8192)}
    ntk = {width: relative_error(mean_over_draws(lambda n: empirical_ntk(n, x), lambda g: FC(12, width, depth, g), 4),
                                 fc_kernel(x, x, depth)) for width in (64, 2048)}
    assert nngp[8192] < 0.05 and ntk[2048] < 0.1  # measured: depth 1: 2.2%, 1.8%; depth 3: 2.4%, 6.7%
    assert nngp[8192] < nngp[128] and ntk[2048] < ntk[64]


def test_conv_kernel_matches_wide_random_conv_networks():
    x = torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    nngp = mean_over_draws(lambda n: empirical_nngp(n, x), lambda g: ConvVec(2, 256, 2, 5, g), 4)
    ntk = mean_over_draws(lambda n: empirical_ntk(n, x), lambda g: ConvVec(2, 256, 2, 5, g), 2)
    narrow = mean_over_draws(lambda n: empirical_nngp(n, x), lambda g: ConvVec(2, 16, 2, 5, g), 4)
    assert relative_error(nngp, conv_kernel(x, x, 2, kind="nngp")) < 0.06  # measured: 3.3% (width 16: 18%)
    assert relative_error(ntk, conv_kernel(x, x, 2)) < 0.06  # measured: 2.0%
    assert relative_error(narrow, conv_kernel(x, x, 2, kind="nngp")) > relative_error(nngp, conv_kernel(x, x, 2, kind="nngp"))


def test_kernels_are_symmetric_and_blocks_do_not_change_them():
    x = torch.randn(7, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    k = conv_kernel(x, x, 2, block=3)
    assert torch.allclose(k, k.T, atol=1e-12) and torch.allclose(k, conv_kernel(x, x, 2, block=100), atol=1e-12)
    f = fc_kernel(x, x, 3)
    assert torch.allclose(f, f.T, atol=1e-12)


def test_fc_gradients_match_finite_differences_also_on_the_diagonal():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, v: fc_kernel(u, v, 2), (a, b))
    assert torch.autograd.gradgradcheck(lambda u, v: fc_kernel(u, v, 2), (a, b))
    # K(x, x) with both arguments the same tensor: c = 1 exactly, the arc-cosine's kink
    assert torch.autograd.gradcheck(lambda u: fc_kernel(u, u, 2), (a,))
    assert torch.isfinite(torch.autograd.grad(fc_kernel(a, a, 2).sum(), a, create_graph=True)[0].sum().backward() or a.grad).all()


def test_conv_gradients_match_finite_differences():
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda u: conv_kernel(u, y, 2), (x,))


def test_float32_agrees_with_float64():
    x = torch.randn(6, 1, 6, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for kernel in (lambda t: fc_kernel(t, t, 3), lambda t: conv_kernel(t, t, 2)):
        k64, k32 = kernel(x), kernel(x.float())
        assert k32.dtype == torch.float32 and torch.allclose(k32.double(), k64, rtol=1e-4, atol=1e-5)


def test_the_random_feature_kernel_concentrates_as_networks_times_width_grows():
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    spread = {}
    for width, networks in ((8, 2), (64, 16)):
        spec = KernelSpec(name="convnet_rf", kind="nngp", depth=2, width=width, networks=networks)
        draws = torch.stack([spec.draw(torch.Generator().manual_seed(s))(x, x) for s in range(6)])
        spread[width * networks] = (draws.std(0).max() / draws.mean(0).diagonal().max()).item()
    assert spread[1024] < 0.5 * spread[16]


def test_draws_exact_kernels_are_fixed_and_sampled_ones_shared_within_a_draw():
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(8))
    exact = KernelSpec(name="conv", depth=2)
    assert torch.equal(exact.draw(torch.Generator().manual_seed(0))(x, x), exact.draw(torch.Generator().manual_seed(1))(x, x))
    sampled = KernelSpec(name="convnet_rf", kind="nngp", depth=2, width=4, networks=2)
    k = sampled.draw(torch.Generator().manual_seed(0))
    assert torch.equal(k(x, x), k(x, x))
    assert not torch.equal(k(x, x), sampled.draw(torch.Generator().manual_seed(1))(x, x))


@pytest.mark.parametrize("spec, shape, message", [
    (KernelSpec(name="rbf"), (1, 8, 8), "unknown kernel.name"),
    (KernelSpec(kind="gp"), (1, 8, 8), "unknown kernel.kind"),
    (KernelSpec(depth=0), (1, 8, 8), "kernel.depth"),
    (KernelSpec(w_std=0), (1, 8, 8), "w_std"),
    (KernelSpec(name="conv"), (1, 50, 50, 50), "conv kernel"),
    (KernelSpec(name="convnet_rf", kind="ntk"), (1, 8, 8), "NNGP only"),
    (KernelSpec(name="convnet_rf", kind="nngp", depth=4), (1, 8, 8), "below 1x1"),
])
def test_impossible_kernels_are_user_errors(spec, shape, message):
    with pytest.raises(UserError, match=message):
        spec.check(shape)
