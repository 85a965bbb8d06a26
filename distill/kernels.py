"""NNGP and NTK kernels of infinitely wide ReLU networks in the NTK parameterisation.

Pure functions of tensors (float32 or float64, any device), batched over all pairs and
differentiable in both inputs, twice where KIP needs it. A layer's pre-activations have
weights ``σ_w / √fan_in · N(0, 1)`` and biases ``σ_b · N(0, 1)`` (neural-tangents' ``stax``
with ``parameterization='ntk'``). For two inputs ``x, x'`` the recursion tracks the
covariance ``Σ(x, x')`` of the pre-activations (the NNGP) and the tangent kernel ``Θ``:

    dense / conv from the inputs:  Σ¹ = σ_w² ⟨x, x'⟩ / d + σ_b²,          Θ¹ = Σ¹
    ReLU, then dense / conv:       Σ^{l+1} = σ_w² E[φ(u)φ(v)] + σ_b²,
                                   Θ^{l+1} = Σ^{l+1} + σ_w² E[φ'(u)φ'(v)] Θ^l

with ``(u, v) ~ N(0, [[Σ(x,x), Σ(x,x')], [Σ(x,x'), Σ(x',x')]])`` and the arc-cosine
expectations (Cho & Saul 2009), ``c = Σ(x,x') / √(Σ(x,x) Σ(x',x'))``, ``θ = arccos c``:

    E[φ(u)φ(v)]   = √(Σ(x,x) Σ(x',x')) · J(c) / (2π),   J(c) = √(1 − c²) + (π − arccos c) c
    E[φ'(u)φ'(v)] = (π − arccos c) / (2π)

For the conv kernels the same holds per pixel position, with every conv averaging its
3×3 neighbourhood (zero padding, as a finite network's "same" convolution).

The closed forms compute in float64 whatever the inputs' dtype (the result is cast back):
in float32, ``c`` of a pair ``x = x'`` comes out ``1 − 10⁻⁷`` rather than 1 (the matrix
product and the squared norms round differently), ``arccos`` turns that into
``θ ≈ 5·10⁻⁴``, and the diagonal of a depth-3 NTK is off by about 2·10⁻⁴ relative, which
a ridge of ``10⁻⁶`` does not hide.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import UserError, unknown

KINDS = ("ntk", "nngp")
KERNELS = ("fc", "conv", "convnet_rf")
KernelFn = Callable[[Tensor, Tensor], Tensor]


class _Arccos(torch.autograd.Function):
    """``arccos(c)`` on ``[−1, 1]`` whose derivative ``−1/√(1 − c²)`` is capped at
    ``1/√eps`` where ``c = ±1`` (the kink of ``E[φ'φ']`` on the diagonal ``x = x'``): exact
    values, finite first and second derivatives (the backward is itself differentiable)."""

    @staticmethod
    def forward(ctx, c: Tensor) -> Tensor:
        ctx.save_for_backward(c)
        return torch.arccos(c.clamp(-1, 1))

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (c,) = ctx.saved_tensors
        return -grad * (1 - c * c).clamp_min(torch.finfo(c.dtype).eps).rsqrt()


class _ArcCosineJ(torch.autograd.Function):
    """``J(c) = √(1 − c²) + (π − arccos c) c``. Its derivative is ``π − arccos c``, finite
    at ``c = ±1`` although both terms' derivatives are infinite there, so the backward uses
    it directly (through ``_Arccos``, so that it can be differentiated again)."""

    @staticmethod
    def forward(ctx, c: Tensor) -> Tensor:
        ctx.save_for_backward(c)
        c = c.clamp(-1, 1)
        return (1 - c * c).clamp_min(0).sqrt() + (math.pi - torch.arccos(c)) * c

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (c,) = ctx.saved_tensors
        return grad * (math.pi - _Arccos.apply(c))


def relu_expectations(cov: Tensor, var1: Tensor, var2: Tensor) -> tuple[Tensor, Tensor]:
    """``(E[φ(u)φ(v)], E[φ'(u)φ'(v)])`` for ReLU ``φ`` (module docstring), elementwise."""
    norm = (var1 * var2).clamp_min(torch.finfo(cov.dtype).tiny).sqrt()
    c = cov / norm
    return norm * _ArcCosineJ.apply(c) / (2 * math.pi), (math.pi - _Arccos.apply(c)) / (2 * math.pi)


def _layer(cov: Tensor, ntk: Tensor | None, var1: Tensor, var2: Tensor, w_var: float, b_var: float,
           mix: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor | None]:
    """ReLU then a dense or conv layer (``mix``: the identity or a 3×3 average)."""
    e_phi, e_dphi = relu_expectations(cov, var1, var2)
    cov_next = w_var * mix(e_phi) + b_var
    return cov_next, (None if ntk is None else cov_next + w_var * mix(e_dphi * ntk))


def fc_kernel(x1: Tensor, x2: Tensor, depth: int, w_std: float = 2**0.5, b_std: float = 0.1, kind: str = "ntk") -> Tensor:
    """The NNGP (``kind='nngp'``) or NTK of a fully connected network with ``depth`` hidden
    ReLU layers and a linear readout: ``Dense, (ReLU, Dense) × depth``, on inputs flattened
    to ``[n, d]``. Returns ``[n1, n2]``."""
    a, b = x1.flatten(1).double(), x2.flatten(1).double()  # in float64: see the module docstring
    d = a.shape[1]
    w_var, b_var = w_std**2, b_std**2
    cov = w_var * (a @ b.T) / d + b_var
    var1 = w_var * a.pow(2).sum(1, keepdim=True) / d + b_var
    var2 = w_var * b.pow(2).sum(1)[None, :] / d + b_var
    ntk = cov if kind == "ntk" else None
    for _ in range(depth):
        cov, ntk = _layer(cov, ntk, var1, var2, w_var, b_var, lambda t: t)
        var1, var2 = w_var * var1 / 2 + b_var, w_var * var2 / 2 + b_var  # E[φ(u)²] = Σ(x,x)/2
    return (cov if ntk is None else ntk).to(x1.dtype)


def _neighbourhood_mean(t: Tensor) -> Tensor:
    """The 3×3 mean around every position of ``[..., H, W]`` maps, zeros beyond the edge."""
    shape = t.shape
    return F.avg_pool2d(t.reshape(-1, 1, *shape[-2:]), 3, stride=1, padding=1, count_include_pad=True).view(shape)


def conv_kernel(x1: Tensor, x2: Tensor, depth: int, w_std: float = 2**0.5, b_std: float = 0.1, kind: str = "ntk",
                block: int = 256) -> Tensor:
    """The NNGP or NTK of ConvVec-``depth``: ``depth`` × (3×3 conv "same", ReLU), then a
    flattened linear readout, no pooling (Nguyen et al. 2021, Sec. 2), on images
    ``[n, C, H, W]``. Without pooling only the covariances at equal positions are needed:
    ``Σ[p](x, x')`` is an ``[H, W]`` map per pair, each conv averages it over the 3×3
    neighbourhood, and the readout averages over positions. Computed ``block`` rows of
    ``x1`` at a time; returns ``[n1, n2]``."""
    w_var, b_var = w_std**2, b_std**2

    def first(a: Tensor, b: Tensor) -> Tensor:  # σ_w² · mean over the 3×3 patch and channels of x·x' + σ_b²
        return w_var * _neighbourhood_mean(torch.einsum("ichw,jchw->ijhw", a, b) / a.shape[1]) + b_var

    dtype, x1, x2 = x1.dtype, x1.double(), x2.double()  # in float64: see the module docstring
    first_diagonal = w_var * _neighbourhood_mean(x2.pow(2).mean(1)) + b_var  # [n2, H, W]
    rows = []
    for start in range(0, len(x1), block):
        a = x1[start : start + block]
        cov = first(a, x2)
        var1 = (w_var * _neighbourhood_mean(a.pow(2).mean(1)) + b_var)[:, None]
        v2 = first_diagonal[None]
        ntk = cov if kind == "ntk" else None
        for layer in range(depth):
            mix = _neighbourhood_mean if layer < depth - 1 else (lambda t: t.mean((-2, -1)))
            cov, ntk = _layer(cov, ntk, var1, v2, w_var, b_var, mix)
            if layer < depth - 1:
                var1 = w_var * _neighbourhood_mean(var1 / 2) + b_var
                v2 = w_var * _neighbourhood_mean(v2 / 2) + b_var
        rows.append(cov if ntk is None else ntk)
    return torch.cat(rows).to(dtype)


def random_convnets(channels: int, width: int, depth: int, networks: int, w_std: float, b_std: float,
                    generator: torch.Generator | None, dtype: torch.dtype, device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """The weights of ``networks`` random ConvNets, stacked as grouped convolutions: layer
    ``l`` has weights ``[M·w, fan_in/9, 3, 3]`` of ``σ_w/√fan_in · N(0, 1)`` and biases
    ``σ_b · N(0, 1)``."""
    layers = []
    for layer in range(depth):
        fan_in = (channels if layer == 0 else width) * 9
        weight = torch.randn(networks * width, fan_in // 9, 3, 3, generator=generator, dtype=dtype) * (w_std / math.sqrt(fan_in))
        bias = torch.randn(networks * width, generator=generator, dtype=dtype) * b_std
        layers.append((weight.to(device), bias.to(device)))
    return layers


def convnet_features(x: Tensor, layers: list[tuple[Tensor, Tensor]], networks: int) -> Tensor:
    """The last hidden layer of every random ConvNet, ``[M, n, D]``: ``depth`` × (3×3 conv,
    ReLU, 2×2 average pool), the ``M`` networks as groups of one convolution."""
    h = x
    for layer, (weight, bias) in enumerate(layers):
        h = F.avg_pool2d(F.relu(F.conv2d(h, weight, bias, padding=1, groups=1 if layer == 0 else networks)), 2)
    return h.view(len(x), networks, -1).transpose(0, 1)


def random_feature_nngp(x1: Tensor, x2: Tensor, layers: list[tuple[Tensor, Tensor]], networks: int, w_std: float, b_std: float) -> Tensor:
    """The NNGP of the ConvNet's readout estimated from ``M`` random finite ConvNets:
    ``K̂(x, x') = σ_w² · 1/M Σ_m ⟨φ_m(x), φ_m(x')⟩ / D + σ_b²`` (its expectation over the
    networks tends to the infinite-width NNGP as the width grows; its spread falls as
    ``1/√(M·w)``)."""
    f1, f2 = convnet_features(x1, layers, networks), convnet_features(x2, layers, networks)
    return w_std**2 * torch.einsum("mid,mjd->ij", f1, f2) / (networks * f1.shape[-1]) + b_std**2


@dataclass(frozen=True)
class KernelSpec:
    """A kernel by name: ``fc``, ``conv`` (ConvVec) or ``convnet_rf`` (random features of the
    ConvNet), its ``kind`` (``ntk`` or ``nngp``), depth and ``σ_w``, ``σ_b``."""

    name: str = "fc"
    kind: str = "ntk"
    depth: int = 3
    w_std: float = 2**0.5
    b_std: float = 0.1
    width: int = 128
    networks: int = 8
    block: int = 256

    def check(self, input_shape: tuple[int, ...]) -> None:
        """A ``UserError`` for a kernel that does not exist or cannot take these inputs."""
        if self.name not in KERNELS:
            raise unknown("kernel.name", self.name, KERNELS)
        if self.kind not in KINDS:
            raise unknown("kernel.kind", self.kind, KINDS)
        if self.depth < 1 or self.w_std <= 0 or self.b_std < 0 or self.width < 1 or self.networks < 1:
            raise UserError(f"kernel.depth, width and networks must be at least 1, w_std positive and b_std non-negative; "
                            f"got depth {self.depth}, width {self.width}, networks {self.networks}, w_std {self.w_std}, b_std {self.b_std}")
        if self.name != "fc" and len(input_shape) != 3:
            raise UserError(f"kernel.name {self.name} is a conv kernel for [C, H, W] images; the inputs are {tuple(input_shape)}: use fc")
        if self.name == "convnet_rf":
            if self.kind == "ntk":
                raise UserError("kernel.name convnet_rf estimates the NNGP only; set kernel.kind: nngp (or use conv for an exact NTK)")
            if min(input_shape[1:]) < 2**self.depth:
                raise UserError(f"kernel.depth {self.depth} pools {input_shape[1]}x{input_shape[2]} images below 1x1; "
                                f"use depth <= {min(input_shape[1:]).bit_length() - 1}")

    def draw(self, generator: torch.Generator | None = None) -> KernelFn:
        """A kernel function ``k(x1, x2) -> [n1, n2]``: the same function every time for the
        exact kernels; for ``convnet_rf``, ``networks`` random ConvNets drawn from
        ``generator`` and used for every call of the returned function."""
        if self.name == "fc":
            return lambda a, b: fc_kernel(a, b, self.depth, self.w_std, self.b_std, self.kind)
        if self.name == "conv":
            return lambda a, b: conv_kernel(a, b, self.depth, self.w_std, self.b_std, self.kind, self.block)
        cache: dict[tuple, list] = {}

        def k(a: Tensor, b: Tensor) -> Tensor:
            key = (a.shape[1], a.dtype, a.device)
            if key not in cache:
                cache[key] = random_convnets(a.shape[1], self.width, self.depth, self.networks, self.w_std, self.b_std,
                                             generator, a.dtype, a.device)
            return random_feature_nngp(a, b, cache[key], self.networks, self.w_std, self.b_std)

        return k
