"""DistilledData: the learned synthetic training set.

``n`` samples arranged as ``S`` steps of ``m = n / S`` samples, their labels, and one raw
learning rate ``r_t`` per step and epoch (``T = S × epochs``), with ``η_t = softplus(r_t)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import UserError


def inverse_softplus(y: float) -> float:
    """``r`` with ``softplus(r) = log(1 + e^r) = y``, i.e. ``r = log(e^y − 1)``."""
    return y + math.log(-math.expm1(-y))


def round_robin_labels(n: int, num_classes: int) -> Tensor:
    """Class ``i mod C`` for sample ``i``: every step of ``≥ C`` samples covers every class."""
    return torch.arange(n) % num_classes


class DistilledData(nn.Module):
    """Synthetic inputs ``x`` ([S, m, *sample_shape]), labels ([S, m] class indices, or
    [S, m, C] real-valued vectors) and raw learning rates ([S × epochs])."""

    def __init__(self, x: Tensor, labels: Tensor, raw_lrs: Tensor, num_classes: int) -> None:
        super().__init__()
        steps = x.shape[0]
        if labels.shape[:2] != x.shape[:2]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match data {tuple(x.shape)}")
        if raw_lrs.ndim != 1 or len(raw_lrs) % steps:
            raise ValueError(f"{len(raw_lrs)} learning rates is not a whole number of epochs of {steps} steps")
        self.x = nn.Parameter(x)
        if labels.is_floating_point():
            self.labels = nn.Parameter(labels)
        else:
            self.register_buffer("labels", labels)
        self.raw_lrs = nn.Parameter(raw_lrs)
        self.num_classes = num_classes

    @classmethod
    def create(
        cls,
        n: int,
        steps: int,
        epochs: int,
        sample_shape: tuple[int, ...],
        num_classes: int,
        lr: float,
        real: tuple[Tensor, Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> "DistilledData":
        """``n`` samples in ``steps`` steps with round-robin hard labels, all learning rates
        ``lr``. Inputs are drawn from N(0, 1), or, given ``real = (x, y)``, copied from random
        real samples of each sample's class."""
        if n % steps:
            raise UserError(f"synthetic.n = {n} is not divisible by synthetic.steps = {steps}")
        labels = round_robin_labels(n, num_classes)
        if real is None:
            x = torch.randn(n, *sample_shape, generator=generator)
        else:
            x = _real_samples(real, labels, generator)
        raw = torch.full((steps * epochs,), inverse_softplus(lr))
        return cls(x.view(steps, n // steps, *sample_shape), labels.view(steps, -1), raw, num_classes)

    @property
    def steps(self) -> int:
        return self.x.shape[0]

    @property
    def epochs(self) -> int:
        return len(self.raw_lrs) // self.steps

    @property
    def n(self) -> int:
        return self.x.shape[0] * self.x.shape[1]

    def lrs(self) -> Tensor:
        """``η = softplus(r)``, shape [T]."""
        return F.softplus(self.raw_lrs)

    def iter_steps(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """The ``T`` training steps in order: ``(x_s, labels_s, η_t)`` with ``s = t mod S``."""
        for t, lr in enumerate(self.lrs()):
            yield self.x[t % self.steps], self.labels[t % self.steps], lr

    def save(self, path: str | Path) -> None:
        torch.save(
            {"x": self.x.detach(), "labels": self.labels.detach(), "raw_lrs": self.raw_lrs.detach(), "num_classes": self.num_classes},
            path,
        )

    @classmethod
    def load(cls, path: str | Path) -> "DistilledData":
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
            return cls(state["x"], state["labels"], state["raw_lrs"], state["num_classes"])
        except FileNotFoundError:
            raise UserError(f"no distilled data at {path}") from None
        except Exception as error:  # a truncated or foreign file
            raise UserError(f"{path} is not a distilled-data file ({error})") from None


def _real_samples(real: tuple[Tensor, Tensor], labels: Tensor, generator: torch.Generator | None) -> Tensor:
    """One random real sample of class ``labels[i]`` for every ``i``."""
    x, y = real
    chosen = []
    for c in labels.tolist():
        pool = torch.nonzero(y == c).flatten()
        chosen.append(pool[torch.randint(len(pool), (1,), generator=generator)])
    return x[torch.cat(chosen)].clone()
