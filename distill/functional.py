"""A model as a pure function of one flat parameter vector.

The inner loop treats a network's weights as a point ``θ ∈ R^P``. ``FunctionalNet`` maps
``θ`` to the module's named parameters (views, no copies) and calls the module through
``torch.func.functional_call``, so ``torch.func.vmap`` can batch ``K`` weight vectors
(``θ`` of shape ``[K, P]``) and ``torch.func.grad`` can differentiate through them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy ``-1/m Σ_i Σ_c y_ic log softmax(z_i)_c``.

    ``labels`` holds class indices (int64, shape ``[m]``) or real-valued label vectors
    (float, shape ``[m, C]``) that are used as given, without normalisation.
    """
    if labels.is_floating_point():
        return -(labels * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    return F.cross_entropy(logits, labels)


@dataclass(frozen=True)
class FunctionalNet:
    """``module`` called as ``f(θ, x)`` with ``θ`` a flat vector of all its parameters."""

    module: nn.Module
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, module: nn.Module) -> "FunctionalNet":
        named = list(module.named_parameters())
        return cls(module, tuple(n for n, _ in named), tuple(p.shape for _, p in named))

    @property
    def per_sample(self) -> bool:
        """True when each sample's output depends on that sample alone (no layer
        normalises with batch statistics), so a batch may be split into micro-batches."""
        return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.module.modules())

    @property
    def num_params(self) -> int:
        return sum(s.numel() for s in self.shapes)

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """The named parameters as views into ``theta`` (shape ``[P]``)."""
        chunks = torch.split(theta, [s.numel() for s in self.shapes])
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}

    def flatten(self, params: dict[str, Tensor]) -> Tensor:
        """The inverse of ``unflatten``: one vector of shape ``[P]``."""
        return torch.cat([params[n].reshape(-1) for n in self.names])

    def logits(self, theta: Tensor, x: Tensor) -> Tensor:
        return functional_call(self.module, self.unflatten(theta), (x,))

    def loss(self, theta: Tensor, x: Tensor, labels: Tensor) -> Tensor:
        """``ℓ(x, y; θ)``, the mean classification loss of one network."""
        return classification_loss(self.logits(theta, x), labels)
