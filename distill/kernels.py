"""NNGP and NTK kernels of infinitely wide ReLU networks (KIP and Label Solve, Nguyen et al. 2021).

Pure functions of tensors: float32 or float64 (the inputs' dtype), any device, batched over
all pairs, differentiable in both inputs, twice where the arc-cosine has its kink.

Parameterisation (neural-tangents' ``stax`` with ``parameterization='ntk'``, ``W_std = σ_w``,
``b_std = σ_b``): a dense or conv layer computes ``z = σ_w/√fan_in · W h + σ_b · b`` with
``W, b ~ N(0, 1)``. For two inputs ``x, x'`` the recursion tracks the covariance of the
pre-activations ``Σ^l(x, x')`` (the NNGP) and the tangent kernel ``Θ^l(x, x')`` (the NTK):

    the first layer, on the inputs (d features):  Σ⁰ = σ_w² ⟨x, x'⟩ / d + σ_b²,   Θ⁰ = Σ⁰
    ReLU, then a linear layer A (l = 0 … depth−1): Σ^{l+1} = σ_w² A[E φ(u)φ(v)] + σ_b²
                                                  Θ^{l+1} = Σ^{l+1} + σ_w² A[Θ^l · E φ'(u)φ'(v)]

with ``(u, v) ~ N(0, [[Σ^l(x,x), Σ^l(x,x')], [Σ^l(x,x'), Σ^l(x',x')]])``, ``φ = ReLU`` and the
arc-cosine expectations (Cho & Saul 2009), ``c = Σ^l(x,x') / √(Σ^l(x,x) Σ^l(x',x'))``,
``θ = arccos c``:

    E φ(u)φ(v)   = √(Σ^l(x,x) Σ^l(x',x')) / (2π) · (sin θ + (π − θ) cos θ)
    E φ'(u)φ'(v) = (π − θ) / (2π)                                          (Σ̇ = σ_w² (π − θ)/(2π))

``Σ^depth`` and ``Θ^depth`` are the kernels of the network's output (``A`` of the last step
is the readout). What ``A`` is depends on the architecture:

* ``fc``: dense layers; ``A`` is the identity.
* ``conv`` (ConvVec): 3×3 "same" convolutions with zero padding, a flattened readout; only the
  covariances at equal positions ``Σ[p]`` are needed, ``A`` is the 3×3 mean around ``p``
  (zeros beyond the edge, always divided by 9) and the readout's ``A`` the mean over ``p``.
* ``convnet``: each block is conv, ReLU, 2×2 average pool; this needs the full spatial
  covariance ``Σ[p, q]``, ``A`` pools ``p`` and ``q`` and then averages ``Σ[p + δ, q + δ]`` over
  the 3×3 shifts ``δ``; the readout takes the mean of the pooled diagonal ``Σ[p, p]``.
  Cost O(pairs × (H·W)²) per layer.
* ``convnet_rf``: the ConvNet's NNGP estimated from ``M`` random finite ConvNets of ``w``
  channels (``random_feature_kernel``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .errors import UserError, unknown

KINDS = ("ntk", "nngp")
KERNELS = ("fc", "conv", "convnet", "convnet_rf")  # names a config's kernel.name may take

# Exact `convnet` on at most this many pixel positions H·W (16×16): (H·W)² = 65,536 covariances
# per pair and layer. 28×28 images have 784² = 614,656, about 0.1 s per pair on one CPU core,
# so a 100 × 1,000 kernel would take hours: use `convnet_rf` or `conv` there.
MAX_EXACT_POSITIONS = 256

# `1 − c²` below SNAP_ULPS machine epsilons is read as 0 (θ = 0 or π exactly): see `relu_expectations`.
SNAP_ULPS = 64

KernelFn = Callable[[Tensor, Tensor], Tensor]
Linear = Callable[[Tensor], Tensor]


# --- the arc-cosine expectations --------------------------------------------------------


def relu_expectations(cov: Tensor, var1: Tensor, var2: Tensor) -> tuple[Tensor, Tensor]:
    """``(E φ(u)φ(v), E φ'(u)φ'(v))`` for ReLU ``φ`` and ``(u, v)`` of covariance ``cov`` and
    variances ``var1``, ``var2`` (broadcast elementwise), as in the module docstring.

    The kink. ``θ = arccos c`` has an infinite derivative at ``c = ±1`` (``x' = x``, or
    ``x' = −x`` without biases), and so does ``sin θ = √(1 − c²)``. ``θ`` is computed as
    ``atan2(sin θ, c)``, and where ``1 − c² ≤ ε`` (``ε = SNAP_ULPS`` machine epsilons of the
    dtype: 7.6e-6 in float32, 1.4e-14 in float64) ``sin θ`` is taken to be exactly 0, with a
    zero gradient: ``sin θ = √max(1 − c², ε) · 1[1 − c² > ε]``, whose square root is never
    taken below ``ε``, so no infinite or NaN derivative reaches even the double backward.

    Why snap rather than clamp ``c`` to ``1 − ε``: ``c`` of a pair ``x = x'`` comes out of dot
    products as ``1 ± a few ulps``, which ``arccos`` magnifies to ``θ ≈ √(2·ulps)`` (3e-4 in
    float32). Snapping makes ``K(x, x)`` exact (``θ = 0``); a clamp at ``1 − ε`` would bias every
    diagonal by ``√(2ε)/(2π)`` in ``E φ'φ'``. The gradient there is 0, the symmetric subgradient
    of the NTK's kink: ``Θ(x, x + δ)`` has a ``−|δ|``-like cusp, while ``E φφ`` is smooth (its
    derivative in ``c`` is ``π − θ``) and ``∂c/∂x = 0`` at ``x = x'``. Pairs nearer than
    ``θ = √ε`` (3e-3 in float32, 1.2e-7 in float64) count as equal: ``E φ'φ'`` moves by at most
    ``√ε/(2π)`` (4e-4 in float32, the size of its rounding error there anyway).
    """
    tiny = torch.finfo(cov.dtype).tiny
    norm = var1.clamp_min(tiny).sqrt() * var2.clamp_min(tiny).sqrt()
    c = cov / norm  # |c| > 1 by rounding is snapped below like |c| = 1
    sin_sq = 1 - c * c
    eps = SNAP_ULPS * torch.finfo(cov.dtype).eps
    sin = sin_sq.clamp_min(eps).sqrt() * (sin_sq > eps).to(cov.dtype)
    gap = math.pi - torch.atan2(sin, c)  # π − θ
    return torch.addcmul(norm * sin, gap, cov) / (2 * math.pi), gap / (2 * math.pi)


def _propagate(cov: Tensor, variances: Sequence[tuple[Tensor, Tensor]], linears: Sequence[Linear],
               w_std: float, b_std: float, kind: str) -> Tensor:
    """From ``Σ⁰ = cov`` (and ``Θ⁰ = Σ⁰``) through ``len(linears)`` steps of ReLU then linear
    layer ``A`` (module docstring); ``variances[l] = (Σ^l(x,x), Σ^l(x',x'))`` broadcastable to
    ``cov``. Returns ``Σ^depth`` (nngp) or ``Θ^depth`` (ntk)."""
    w_var, b_var = w_std**2, b_std**2
    ntk = cov if kind == "ntk" else None
    for (var1, var2), linear in zip(variances, linears, strict=True):
        e_phi, e_dphi = relu_expectations(cov, var1, var2)
        cov = w_var * linear(e_phi) + b_var
        if ntk is not None:
            ntk = cov + w_var * linear(ntk * e_dphi)
    return cov if ntk is None else ntk


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise unknown("kernel kind", kind, KINDS)


# --- fully connected --------------------------------------------------------------------


def fc_kernel(x1: Tensor, x2: Tensor, depth: int, w_std: float = 2**0.5, b_std: float = 0.1,
              kind: str = "ntk") -> Tensor:
    """The NNGP (``kind='nngp'``) or NTK of ``Dense, (ReLU, Dense) × depth``: ``depth`` hidden
    ReLU layers and a linear readout, closed form (module docstring, ``A`` = identity). The
    variances follow ``Σ^{l+1}(x, x) = σ_w² Σ^l(x, x)/2 + σ_b²`` (``E φ(u)² = Σ/2``). Inputs
    ``[n, ...]`` are flattened to ``[n, d]``; returns ``[n1, n2]``."""
    _check_kind(kind)
    a, b = x1.flatten(1), x2.flatten(1)
    w_var, b_var, d = w_std**2, b_std**2, a.shape[1]
    var1 = w_var * (a * a).sum(1, keepdim=True) / d + b_var
    var2 = w_var * (b * b).sum(1)[None] / d + b_var
    variances = []
    for _ in range(depth):
        variances.append((var1, var2))
        var1, var2 = w_var * var1 / 2 + b_var, w_var * var2 / 2 + b_var
    return _propagate(w_var * (a @ b.T) / d + b_var, variances, [_identity] * depth, w_std, b_std, kind)


def _identity(t: Tensor) -> Tensor:
    return t


# --- linear maps of the conv kernels -------------------------------------------------------


class _SelfAdjoint(torch.autograd.Function):
    """A linear map ``A`` with ``Aᵀ = A`` (the zero-padded 3×3 means below: a symmetric filter),
    whose backward is ``A`` itself: one pass instead of the backward of every padding and
    slice autograd would record, and differentiable again through this same function."""

    @staticmethod
    def forward(ctx, t: Tensor, linear: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.linear = linear
        return linear(t)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return _SelfAdjoint.apply(grad, ctx.linear), None


def _box(t: Tensor) -> Tensor:
    """``1/9 Σ_δ t[p + δ]`` over the 3×3 shifts of ``[..., H, W]`` maps, zero beyond the edge: three
    shifts along W, then three along H (a tenth of ``avg_pool2d``'s time on one channel)."""
    padded = F.pad(t, (1, 1, 1, 1))
    rows = padded[..., :-2] + padded[..., 1:-1] + padded[..., 2:]
    return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) / 9


def _pair_box(t: Tensor) -> Tensor:
    """``1/9 Σ_δ t[p + δ, q + δ]`` of ``[..., H, W, H, W]``, zero beyond the edge: three joint
    shifts of both W positions, then three of both H positions."""
    h, w = t.shape[-2:]
    padded = F.pad(t, (1, 1) * 4)
    rows = sum(padded[..., j : j + w, :, j : j + w] for j in range(3))
    return sum(rows[..., i : i + h, :, i : i + h, :] for i in range(3)) / 9


def _neighbourhood_mean(t: Tensor) -> Tensor:
    """``A[Σ][p] = 1/9 Σ_δ Σ[p + δ]`` over the 3×3 shifts ``δ`` of ``[..., H, W]`` maps, zero
    beyond the edge (the zero padding of a "same" convolution; the divisor stays 9)."""
    return _SelfAdjoint.apply(t, _box)


def _position_mean(t: Tensor) -> Tensor:
    """The flattened readout of ``[..., H, W]`` maps: the mean over positions ``p``."""
    return t.mean((-2, -1))


def _pair_neighbourhood_mean(t: Tensor) -> Tensor:
    """``A[Σ][p, q] = 1/9 Σ_δ Σ[p + δ, q + δ]`` of ``[..., H, W, H, W]`` covariances, zero beyond the edge."""
    return _SelfAdjoint.apply(t, _pair_box)


def _pair_pool(t: Tensor) -> Tensor:
    """2×2 average pooling (stride 2, odd edges dropped) of both positions of ``[..., H, W, H, W]``."""
    h, w = t.shape[-2] // 2, t.shape[-1] // 2
    t = t[..., : 2 * h, : 2 * w, : 2 * h, : 2 * w]
    return t.reshape(*t.shape[:-4], h, 2, w, 2, h, 2, w, 2).mean((-7, -5, -3, -1))


def _pair_diagonal(t: Tensor) -> Tensor:
    """``Σ[p, p]`` of ``[..., H, W, H, W]`` covariances, as ``[..., H, W]``."""
    h, w = t.shape[-2:]
    return t.reshape(*t.shape[:-4], h * w, h * w).diagonal(dim1=-2, dim2=-1).reshape(*t.shape[:-4], h, w)


def _pooled_block(t: Tensor) -> Tensor:
    return _pair_neighbourhood_mean(_pair_pool(t))


def _pooled_readout(t: Tensor) -> Tensor:
    return _position_mean(_pair_diagonal(_pair_pool(t)))


# --- conv kernels: ConvVec (pool=False) and the exact ConvNet (pool=True) -------------------


def conv_kernel(x1: Tensor, x2: Tensor, depth: int, w_std: float = 2**0.5, b_std: float = 0.1,
                kind: str = "ntk", pool: bool = False, block: int = 256) -> Tensor:
    """The NNGP or NTK of ``depth`` × (3×3 conv "same", ReLU) then a flattened linear readout
    (``pool=False``: ConvVec-``depth``), or of ``depth`` × (3×3 conv, ReLU, 2×2 average pool)
    then a flattened readout (``pool=True``: ConvNet-``depth``, exact), on images
    ``[n, C, H, W]``; ``Σ⁰[p] = σ_w² · 1/9 Σ_δ ⟨x[p+δ], x'[p+δ]⟩/C + σ_b²`` and the recursion
    of the module docstring. Returns ``[n1, n2]``.

    Computed in tiles of at most ``block`` pairs (a few rows of ``x1`` × up to ``block``
    columns of ``x2``): ConvVec holds ``[pairs, H, W]`` per tile, O(pairs × H·W) work; the
    ConvNet ``[pairs, H, W, H, W]``, O(pairs × (H·W)²). When a gradient is needed and there is
    more than one tile, each tile's graph is recomputed in the backward pass instead of
    stored (``torch.utils.checkpoint``), so memory stays at one tile's graph."""
    _check_kind(kind)
    _check_images(x1, x2)
    var1 = _conv_variances(x1, depth, w_std, b_std, pool, block)
    var2 = var1 if x2 is x1 else _conv_variances(x2, depth, w_std, b_std, pool, block)
    tile = functools.partial(_conv_tile, depth=depth, w_std=w_std, b_std=b_std, kind=kind, pool=pool)
    rows = []
    for r, cols in _tiles(len(x1), len(x2), block):
        row = [_maybe_checkpoint(tile, x1[r], x2[c], *[v[r] for v in var1], *[v[c] for v in var2],
                                 save_memory=len(x1) * len(x2) > block) for c in cols]
        rows.append(torch.cat(row, 1))
    return torch.cat(rows)


def _conv_tile(a: Tensor, b: Tensor, *variances: Tensor, depth: int, w_std: float, b_std: float, kind: str,
               pool: bool) -> Tensor:
    """The kernel of rows ``a`` × columns ``b``, given their per-layer variances ``Σ^l(x, x)[p]``
    (the first ``depth`` of ``variances`` for ``a``, the rest for ``b``)."""
    c = a.shape[1]
    if pool:
        cov = w_std**2 * _pair_neighbourhood_mean(torch.einsum("ichw,jcuv->ijhwuv", a, b) / c) + b_std**2
        pairs = [(v1[:, None, :, :, None, None], v2[None, :, None, None])
                 for v1, v2 in zip(variances[:depth], variances[depth:])]
        linears = [_pooled_block] * (depth - 1) + [_pooled_readout]
    else:
        cov = w_std**2 * _neighbourhood_mean(torch.einsum("ichw,jchw->ijhw", a, b) / c) + b_std**2
        pairs = [(v1[:, None], v2[None]) for v1, v2 in zip(variances[:depth], variances[depth:])]
        linears = [_neighbourhood_mean] * (depth - 1) + [_position_mean]
    return _propagate(cov, pairs, linears, w_std, b_std, kind)


def _conv_variances(x: Tensor, depth: int, w_std: float, b_std: float, pool: bool, block: int) -> list[Tensor]:
    """``Σ^l(x, x)[p]`` for l = 0 … depth−1, each ``[n, H_l, W_l]``. Without pooling
    ``Σ^{l+1}(x,x) = σ_w² A[Σ^l(x,x)/2] + σ_b²``; with pooling the full ``Σ^l(x, x)[p, q]`` is
    propagated (its off-diagonal entries reach the diagonal through the pooling), ``block``
    images at a time."""
    w_var, b_var = w_std**2, b_std**2
    if not pool:
        var = w_var * _neighbourhood_mean((x * x).mean(1)) + b_var
        variances = [var]
        for _ in range(depth - 1):
            var = w_var * _neighbourhood_mean(var / 2) + b_var
            variances.append(var)
        return variances
    chunks = [_pooled_variances(part, depth, w_var, b_var) for part in x.split(block)]
    return [torch.cat(layer) for layer in zip(*chunks)]


def _pooled_variances(x: Tensor, depth: int, w_var: float, b_var: float) -> list[Tensor]:
    cov = w_var * _pair_neighbourhood_mean(torch.einsum("nchw,ncuv->nhwuv", x, x) / x.shape[1]) + b_var
    variances = [_pair_diagonal(cov)]
    for _ in range(depth - 1):
        var = variances[-1]
        e_phi, _ = relu_expectations(cov, var[..., None, None], var[:, None, None])
        cov = w_var * _pooled_block(e_phi) + b_var
        variances.append(_pair_diagonal(cov))
    return variances


def _check_images(x1: Tensor, x2: Tensor) -> None:
    if x1.dim() != 4 or x2.dim() != 4 or x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"conv kernels take two batches of images [n, C, H, W] of one shape; got {tuple(x1.shape)} "
                         f"and {tuple(x2.shape)}")


def _tiles(n1: int, n2: int, block: int) -> Iterator[tuple[slice, list[slice]]]:
    """Row slices of ``x1`` with the column slices of ``x2`` of each, at most ``block`` pairs a tile."""
    width = min(n2, block)
    height = max(1, block // width)
    for i in range(0, n1, height):
        yield slice(i, i + height), [slice(j, j + width) for j in range(0, n2, width)]


def _maybe_checkpoint(fn: Callable[..., Tensor], *args: Tensor, save_memory: bool) -> Tensor:
    """``fn(*args)``; recomputed in the backward pass rather than stored when ``save_memory``
    and a gradient is being recorded (non-reentrant, so double backward works through it)."""
    if save_memory and torch.is_grad_enabled() and any(a.requires_grad for a in args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


# --- random features of the ConvNet ------------------------------------------------------


@dataclass(frozen=True)
class RandomConvNets:
    """``networks`` random ConvNets of ``width`` channels, stacked for grouped convolutions:
    ``weights[l]`` is ``[M·w, C_l, 3, 3]`` and ``biases[l]`` ``[M·w]``, all ``N(0, 1)`` (the
    NTK parameterisation scales them in the forward pass)."""

    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]
    networks: int

    def to(self, dtype: torch.dtype, device: torch.device | str) -> RandomConvNets:
        return RandomConvNets(tuple(w.to(device, dtype) for w in self.weights),
                              tuple(b.to(device, dtype) for b in self.biases), self.networks)


def random_convnets(channels: int, depth: int, width: int, networks: int,
                    generator: torch.Generator | None = None) -> RandomConvNets:
    """Draw ``networks`` ConvNets of ``depth`` blocks on ``channels``-channel images, in float32
    on the generator's device (``RandomConvNets.to`` converts)."""
    device = generator.device if generator is not None else torch.device("cpu")
    weights, biases = [], []
    for layer in range(depth):
        fan_in = channels if layer == 0 else width
        weights.append(torch.randn(networks * width, fan_in, 3, 3, generator=generator, device=device))
        biases.append(torch.randn(networks * width, generator=generator, device=device))
    return RandomConvNets(tuple(weights), tuple(biases), networks)


def convnet_features(x: Tensor, nets: RandomConvNets, w_std: float = 2**0.5, b_std: float = 0.1) -> Tensor:
    """``φ_m(x) · σ_w/√D`` for every network ``m``: ``[n, M, D]``, the last hidden layer of
    ``depth`` × (3×3 conv "same", ReLU, 2×2 average pool) with ``z = σ_w/√(9 C_l) · W * h +
    σ_b · b``, flattened to ``D = w · H_L · W_L`` features. The first conv sees ``x`` in every
    network; later ones are grouped, one group per network. The activations are kept in
    channels-last layout, which oneDNN convolves about twice as fast on the CPU."""
    h = x.contiguous(memory_format=torch.channels_last)
    for layer, (weight, bias) in enumerate(zip(nets.weights, nets.biases)):
        scale = w_std / math.sqrt(weight[0].numel())
        h = F.conv2d(h, weight * scale, bias * b_std, padding=1, groups=1 if layer == 0 else nets.networks)
        h = F.avg_pool2d(F.relu(h), 2)
    features = h.reshape(len(x), nets.networks, -1)
    return features * (w_std / math.sqrt(features.shape[-1]))


def random_feature_kernel(x1: Tensor, x2: Tensor, nets: RandomConvNets, w_std: float = 2**0.5,
                          b_std: float = 0.1, block: int = 256) -> Tensor:
    """The ConvNet's NNGP estimated from ``M`` random finite ConvNets (``nets``):

        K̂(x, x') = 1/M Σ_m σ_w² ⟨φ_m(x), φ_m(x')⟩ / D + σ_b²,

    the covariance of the readout ``σ_w/√D · ⟨v, φ_m(x)⟩ + σ_b · b`` over ``v, b ~ N(0, 1)``,
    averaged over the networks. It tends to the infinite-width NNGP (``conv_kernel(...,
    pool=True, kind='nngp')``) as the width grows (a bias of order ``1/w``), and its spread
    falls as ``1/√(M·w)``. Features are computed for ``block // M`` images at a time (each
    chunk's graph recomputed in the backward pass when there are several), once per input:
    cost ``(n1 + n2) × M`` network forward passes plus an ``[n1, n2]`` product."""
    chunk = max(1, block // nets.networks)
    f1 = _chunked_features(x1, nets, w_std, b_std, chunk)
    f2 = f1 if x2 is x1 else _chunked_features(x2, nets, w_std, b_std, chunk)
    return torch.einsum("imd,jmd->ij", f1, f2) / nets.networks + b_std**2


def _chunked_features(x: Tensor, nets: RandomConvNets, w_std: float, b_std: float, chunk: int) -> Tensor:
    features = functools.partial(convnet_features, nets=nets, w_std=w_std, b_std=b_std)
    return torch.cat([_maybe_checkpoint(features, part, save_memory=len(x) > chunk) for part in x.split(chunk)])


# --- a kernel by name ---------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSpec:
    """A kernel by name (one of ``KERNELS``) and ``kind`` (``ntk`` or ``nngp``): ``depth`` hidden
    layers (``fc``) or conv blocks, ``σ_w = w_std``, ``σ_b = b_std``; ``convnet_rf`` averages
    ``networks`` random ConvNets of ``width`` channels. ``block`` bounds the work held at once:
    pairs per tile for ``conv`` and ``convnet``, image × network evaluations per chunk for
    ``convnet_rf``; ``fc`` needs no blocks."""

    name: str = "fc"
    kind: str = "ntk"
    depth: int = 3
    w_std: float = 2**0.5
    b_std: float = 0.1
    width: int = 128
    networks: int = 8
    block: int = 256

    def draw(self, generator: torch.Generator | None = None) -> KernelFn:
        """A kernel function ``k(x1, x2) -> [n1, n2]``. Exact kernels ignore ``generator`` and
        return the same kernel every time. ``convnet_rf`` takes one seed from ``generator`` (the
        global generator when ``None``) for ``networks`` fresh random ConvNets; the returned
        function uses those networks for every call, so ``K_ss`` and ``K_ts`` of one KIP step
        share them."""
        self._check_settings()
        if self.name == "fc":
            return functools.partial(fc_kernel, depth=self.depth, w_std=self.w_std, b_std=self.b_std, kind=self.kind)
        if self.name in ("conv", "convnet"):
            return functools.partial(conv_kernel, depth=self.depth, w_std=self.w_std, b_std=self.b_std,
                                     kind=self.kind, pool=self.name == "convnet", block=self.block)
        seed = int(torch.randint(2**62, (), generator=generator, device=generator.device if generator else None))
        return self._random_feature_kernel(seed)

    def _random_feature_kernel(self, seed: int) -> KernelFn:
        """``random_feature_kernel`` with the networks of ``seed``, drawn on the first call (they
        depend on the inputs' channels) and kept for every later one."""

        @functools.cache
        def networks(channels: int, dtype: torch.dtype, device: torch.device) -> RandomConvNets:
            gen = torch.Generator().manual_seed(seed)
            return random_convnets(channels, self.depth, self.width, self.networks, gen).to(dtype, device)

        def kernel(x1: Tensor, x2: Tensor) -> Tensor:
            nets = networks(x1.shape[1], x1.dtype, x1.device)
            return random_feature_kernel(x1, x2, nets, self.w_std, self.b_std, self.block)

        return kernel

    def check(self, input_shape: tuple[int, ...]) -> None:
        """A ``UserError`` (one line) for settings that name no kernel, or a kernel that cannot
        take inputs of ``input_shape`` (one sample's shape, e.g. ``(1, 28, 28)``)."""
        self._check_settings()
        if self.name == "fc":
            return
        if len(input_shape) != 3:
            raise UserError(f"kernel.name={self.name} is a conv kernel for images [C, H, W]; these inputs are "
                            f"{tuple(input_shape)}: use kernel.name=fc")
        _, h, w = input_shape
        if self.name in ("convnet", "convnet_rf") and min(h, w) < 2**self.depth:
            raise UserError(f"kernel.depth={self.depth} pools {h}x{w} images below 1x1 (each block halves them); "
                            f"use kernel.depth <= {min(h, w).bit_length() - 1}, or kernel.name=conv (no pooling)")
        if self.name == "convnet" and h * w > MAX_EXACT_POSITIONS:
            raise UserError(f"the exact convnet kernel costs (H·W)² = {(h * w) ** 2:,} covariances per pair and layer "
                            f"on {h}x{w} images (at most {MAX_EXACT_POSITIONS ** 2:,}, i.e. 16x16, is feasible here); "
                            f"use kernel.name=convnet_rf (random features of the same ConvNet) or kernel.name=conv "
                            f"(no pooling)")

    def _check_settings(self) -> None:
        if self.name not in KERNELS:
            raise unknown("kernel.name", self.name, KERNELS)
        if self.kind not in KINDS:
            raise unknown("kernel.kind", self.kind, KINDS)
        counts = {"depth": self.depth, "width": self.width, "networks": self.networks, "block": self.block}
        for field, value in counts.items():
            if value < 1:
                raise UserError(f"kernel.{field} must be at least 1; got {value}")
        if self.w_std <= 0 or self.b_std < 0:
            raise UserError(f"kernel.w_std must be positive and kernel.b_std non-negative; got w_std={self.w_std}, "
                            f"b_std={self.b_std}")
        if self.name == "convnet_rf" and self.kind == "ntk":
            raise UserError("kernel.name=convnet_rf estimates the NNGP only (an empirical NTK needs every network's "
                            "Jacobian, about 9·w²·depth parameters per image); set kernel.kind=nngp, or use conv or "
                            "convnet for an exact NTK")
