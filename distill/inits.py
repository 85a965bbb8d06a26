"""Distributions ``p(θ₀)`` of initial weights, and seeded random streams.

A sampler gives the ``K`` initial weight vectors of each outer iteration (``sample``) and
the weights evaluation trains (``held_out``). ``fixed`` is one vector drawn once and kept
in the checkpoint; ``random`` draws fresh vectors every iteration from a stream that is a
pure function of ``(seed, iteration)``, so a resumed run sees the same draws.
``pretrained_fixed`` is one network of a pretrained pool (:mod:`distill.pool`);
``pretrained_random`` samples the pool's training networks and evaluates on its held-out ones.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor, nn

from .choices import SCHEMES
from .functional import FunctionalNet
from .seeds import Stream, generator

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)

def init_weights(net: FunctionalNet, scheme: str, gain: float, gen: torch.Generator) -> Tensor:
    """One flat weight vector drawn from ``scheme`` (the reference code's ``init_weights``).

    Weights of conv/linear/recurrent layers: ``xavier`` N(0, gain²·2/(fan_in+fan_out)),
    ``xavier_uniform``, ``kaiming`` N(0, 2/((1+gain²)·fan_in)), ``normal`` N(0, gain²),
    ``orthogonal`` (gain), ``default`` PyTorch's U(±1/√fan_in)-style reset; biases 0
    (``default``: U(±1/√fan_in)); normalisation layers: weight 1, bias 0.
    """
    params: dict[str, Tensor] = {}
    for prefix, module in net.module.named_modules():
        for name, p in module.named_parameters(recurse=False):
            key = f"{prefix}.{name}" if prefix else name
            params[key] = _draw(module, name, p, scheme, gain, gen)
    return net.flatten(params)


def _draw(module: nn.Module, name: str, p: Tensor, scheme: str, gain: float, gen: torch.Generator) -> Tensor:
    w = torch.empty(p.shape, dtype=p.dtype)  # on the CPU: the generator is a CPU one, and draws match on every device
    if isinstance(module, NORMS):
        return w.fill_(1.0 if name == "weight" else 0.0)
    if p.ndim < 2:
        if scheme != "default":
            return w.zero_()
        fan_in = _fan_in(module, p)
        return w.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=gen)
    match scheme:
        case "xavier":
            return nn.init.xavier_normal_(w, gain=gain, generator=gen)
        case "xavier_uniform":
            return nn.init.xavier_uniform_(w, gain=gain, generator=gen)
        case "kaiming":
            return nn.init.kaiming_normal_(w, a=gain, mode="fan_in", generator=gen)
        case "normal":
            return nn.init.normal_(w, 0.0, gain, generator=gen)
        case "orthogonal":
            return nn.init.orthogonal_(w, gain=gain, generator=gen)
        case "default":
            return nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
    raise ValueError(f"unknown init scheme {scheme!r}; choose one of {SCHEMES}")


def _fan_in(module: nn.Module, bias: Tensor) -> int:
    """The fan-in PyTorch's default reset uses for a bias: that of the module's weight
    (recurrent cells: the hidden size, ``bias.numel() / 4`` for the four gates)."""
    weight = getattr(module, "weight", None)
    if weight is None or weight.ndim < 2:
        return max(bias.numel() // 4, 1)
    return weight[0].numel()


class InitSampler(Protocol):
    """Where the initial weights of training and evaluation come from."""

    def sample(self, k: int, iteration: int) -> Tensor:
        """``k`` initial weight vectors for outer iteration ``iteration``: [k, P]."""

    def rows(self, k: int) -> int:
        """How many vectors ``sample(k, ·)`` returns."""

    def held_out(self, n: int) -> Tensor:
        """Weights for evaluation, never used in training (fixed: the one vector): [≤n, P]."""

    def state_dict(self) -> dict: ...


class FixedInit:
    """``p(θ₀) = δ(θ₀ − θ*)``: one weight vector, drawn once (or restored from a checkpoint)."""

    def __init__(self, net: FunctionalNet, scheme: str, gain: float, seed: int, theta: Tensor | None = None) -> None:
        self.theta = theta if theta is not None else init_weights(net, scheme, gain, generator(seed, Stream.FIXED))

    def sample(self, k: int, iteration: int) -> Tensor:
        """One row whatever ``k``: ``K`` copies of ``θ*`` would give the same mean loss."""
        return self.theta[None]

    def rows(self, k: int) -> int:
        return 1

    def held_out(self, n: int) -> Tensor:
        return self.theta[None]

    def state_dict(self) -> dict:
        return {"theta": self.theta}


class RandomInit:
    """``θ₀ ~ scheme``, fresh every iteration; held-out draws come from a disjoint stream."""

    def __init__(self, net: FunctionalNet, scheme: str, gain: float, seed: int) -> None:
        self.net, self.scheme, self.gain, self.seed = net, scheme, gain, seed

    def _draws(self, n: int, *keys: int) -> Tensor:
        gen = generator(self.seed, *keys)
        return torch.stack([init_weights(self.net, self.scheme, self.gain, gen) for _ in range(n)])

    def sample(self, k: int, iteration: int) -> Tensor:
        return self._draws(k, Stream.TRAIN, iteration)

    def rows(self, k: int) -> int:
        return k

    def held_out(self, n: int) -> Tensor:
        return self._draws(n, Stream.HELD_OUT)

    def state_dict(self) -> dict:
        return {}


class PoolInit:
    """``θ₀`` uniform over the training networks of a pretrained pool: every iteration draws
    ``K`` of them without replacement (stream ``(seed, iteration)``); evaluation uses the
    held-out networks, which training never sees."""

    def __init__(self, train: Tensor, held: Tensor, seed: int) -> None:
        if not len(train) or not len(held):
            raise ValueError(f"a pool split needs training and held-out networks, got {len(train)} and {len(held)}")
        self.train, self.held, self.seed = train, held, seed

    def sample(self, k: int, iteration: int) -> Tensor:
        order = torch.randperm(len(self.train), generator=generator(self.seed, Stream.TRAIN, iteration))
        return self.train[order[:k]]

    def rows(self, k: int) -> int:
        return min(k, len(self.train))

    def held_out(self, n: int) -> Tensor:
        return self.held[:n]

    def state_dict(self) -> dict:
        return {}


def make_sampler(
    kind: str,
    net: FunctionalNet,
    scheme: str,
    gain: float,
    seed: int,
    state: dict | None = None,
    pool: Tensor | None = None,
    train_networks: int | None = None,
    network: int = 0,
) -> InitSampler:
    """The sampler for ``init.kind``; ``state`` restores a checkpointed one. ``pretrained_fixed``
    is network ``network`` of ``pool`` ([N, P]); ``pretrained_random`` trains on the pool's
    first ``train_networks`` rows and holds out the rest."""
    if kind in ("fixed", "pretrained_fixed"):
        theta = (state or {}).get("theta")
        if theta is None and kind == "pretrained_fixed":
            theta = pool[network].clone()
        return FixedInit(net, scheme, gain, seed, theta=theta)
    if kind == "random":
        return RandomInit(net, scheme, gain, seed)
    if kind == "pretrained_random":
        return PoolInit(pool[:train_networks], pool[train_networks:], seed)
    raise ValueError(f"unknown init kind {kind!r}")
