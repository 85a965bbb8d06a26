"""Learners of a task stream, as functions of one flat weight vector ``θ``.

Every learner trains with plain SGD on the task at hand, ``θ ← θ − η·adjust(g)`` with
``g = ∇_θ ℓ(batch; θ)``, and differs in ``adjust`` and in what it keeps when a task ends:

    single   g unchanged (fine-tuning; forgets)
    ewc      g + λ Σ_k F_k ⊙ (θ − θ*_k)   (Kirkpatrick et al.), the gradient of the
             penalty ½λ Σ_k Σ_i F_k,i (θ_i − θ*_k,i)², ``F_k`` a diagonal Fisher of
             task k at its final weights ``θ*_k``: the empirical Fisher of its training
             samples, or (``memory_batch``) the squared gradient of the mean loss of its
             memory samples, as Lopez-Paz & Ranzato's GEM code computes it
    gem      GEM's projection of g against the memory gradients of all previous tasks
             (:mod:`distill.continual.gem`)

A task's network is the shared model restricted to the task's classes (``TaskHead``),
so split streams are multi-headed and permuted streams use all classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from ..functional import FunctionalNet
from .gem import project

FISHER_CHUNK = 100


class TaskHead(nn.Module):
    """``body`` with its logits restricted to ``classes``; its flat weights are the body's."""

    def __init__(self, body: nn.Module, classes: Tensor) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("classes", classes.clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).index_select(-1, self.classes)


def head_of(body: nn.Module, classes: Tensor) -> FunctionalNet:
    """The functional network of a task with ``classes`` on the shared ``body``."""
    return FunctionalNet.of(TaskHead(body, classes.to(next(body.parameters()).device)))


class Learner(Protocol):
    def adjust(self, theta: Tensor, g: Tensor) -> Tensor:
        """The update direction for the minibatch gradient ``g`` at ``θ``."""

    def end_task(self, theta: Tensor, head: FunctionalNet, task_x: Tensor, task_y: Tensor, memory: tuple[Tensor, Tensor]) -> None:
        """Keep what the learner needs of the task that just ended."""

    def state_dict(self) -> dict:
        """What it has kept (tensors and numbers), for a checkpoint."""

    def load_state_dict(self, state: dict, heads: list[FunctionalNet]) -> None:
        """Restore ``state_dict()``; ``heads`` are the stream's task networks in order."""


class Single:
    """Plain fine-tuning."""

    def adjust(self, theta: Tensor, g: Tensor) -> Tensor:
        return g

    def end_task(self, theta, head, task_x, task_y, memory) -> None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict, heads: list[FunctionalNet]) -> None:
        return None


def fisher_diagonal(head: FunctionalNet, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """The diagonal empirical Fisher ``F_i = 1/N Σ_n (∂ℓ(x_n, y_n; θ)/∂θ_i)²``."""
    per_sample = vmap(grad(head.loss), in_dims=(None, 0, 0))
    total = torch.zeros_like(theta)
    for xs, ys in zip(x.split(FISHER_CHUNK), y.split(FISHER_CHUNK)):
        total += per_sample(theta, xs[:, None], ys[:, None]).square().sum(0)
    return total / len(y)


def batch_fisher(head: FunctionalNet, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """``F_i = (∂/∂θ_i 1/M Σ_n ℓ(x_n, y_n; θ))²``, the square of the mean loss's gradient over
    the ``M`` samples (Lopez-Paz & Ranzato's EWC, with ``M`` memory samples per task)."""
    return grad(head.loss)(theta, x, y).square()


FISHERS = {"empirical": fisher_diagonal, "memory_batch": batch_fisher}


@dataclass
class EWC:
    """Elastic weight consolidation; keeps ``Σ_k F_k`` and ``Σ_k F_k ⊙ θ*_k`` (O(P) memory).
    ``fisher``: ``empirical`` (``fisher_diagonal`` of the task's training samples) or
    ``memory_batch`` (``batch_fisher`` of the task's memory samples)."""

    strength: float
    fisher: str = "empirical"
    fisher_sum: Tensor | None = None
    anchor_sum: Tensor | None = None

    def adjust(self, theta: Tensor, g: Tensor) -> Tensor:
        if self.fisher_sum is None:
            return g
        return g + self.strength * (self.fisher_sum * theta - self.anchor_sum)

    def end_task(self, theta, head, task_x, task_y, memory) -> None:
        x, y = memory if self.fisher == "memory_batch" else (task_x, task_y)
        fisher = FISHERS[self.fisher](head, theta, x, y)
        self.fisher_sum = fisher if self.fisher_sum is None else self.fisher_sum + fisher
        self.anchor_sum = fisher * theta if self.anchor_sum is None else self.anchor_sum + fisher * theta

    def state_dict(self) -> dict:
        return {"fisher_sum": self.fisher_sum, "anchor_sum": self.anchor_sum}

    def load_state_dict(self, state: dict, heads: list[FunctionalNet]) -> None:
        self.fisher_sum, self.anchor_sum = state["fisher_sum"], state["anchor_sum"]


@dataclass
class GEM:
    """Gradient episodic memory: one ``(head, x, y)`` memory per previous task."""

    margin: float
    memories: list[tuple[FunctionalNet, Tensor, Tensor]] = field(default_factory=list)
    projections: int = 0

    def memory_gradients(self, theta: Tensor) -> Tensor:
        """``G``: the gradient of every previous task's memory loss at ``θ``, [t, P]."""
        return torch.stack([grad(head.loss)(theta, x, y) for head, x, y in self.memories])

    def adjust(self, theta: Tensor, g: Tensor) -> Tensor:
        if not self.memories:
            return g
        projected = project(g, self.memory_gradients(theta), self.margin)
        self.projections += projected is not g
        return projected

    def end_task(self, theta, head, task_x, task_y, memory) -> None:
        self.memories.append((head, *memory))

    def state_dict(self) -> dict:
        return {"x": [x for _, x, _ in self.memories], "y": [y for _, _, y in self.memories], "projections": self.projections}

    def load_state_dict(self, state: dict, heads: list[FunctionalNet]) -> None:
        self.memories = list(zip(heads, state["x"], state["y"]))
        self.projections = state["projections"]


def make_learner(kind: str, memory_strength: float, ewc_lambda: float, ewc_fisher: str = "empirical") -> Learner:
    if kind == "single":
        return Single()
    if kind == "ewc":
        return EWC(ewc_lambda, ewc_fisher)
    if kind == "gem":
        return GEM(memory_strength)
    raise ValueError(f"unknown learner {kind!r}")


def train_task(
    theta: Tensor, head: FunctionalNet, x: Tensor, y: Tensor, learner: Learner,
    epochs: int, batch_size: int, lr: float, gen: torch.Generator,
) -> Tensor:
    """``epochs`` shuffled passes of SGD over ``(x, y)``: ``θ ← θ − lr·adjust(∇ℓ(batch; θ))``."""
    loss_gradient = grad(head.loss)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).to(y.device).split(batch_size):
            theta = theta - lr * learner.adjust(theta, loss_gradient(theta, x[idx], y[idx]))
    return theta
