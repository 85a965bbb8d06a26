"""Evaluation: train held-out networks on distilled data and measure test accuracy.

``N`` initial weight vectors are trained at once (``vmap``) with the distilled steps and
their learned learning rates, ``θ_T = θ_0 − Σ_t η_t ∇ℓ(x̃_{s(t)}; θ_t)``, and each is
tested on the whole test split. The result is the mean, standard deviation and count of
the ``N`` accuracies, before and after training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from torch.func import vmap

from .functional import FunctionalNet
from .synthetic import DistilledData
from .unroll import train

MODELS_PER_CHUNK = 50
CPU_TEST_BATCH = 256  # on the CPU, one network at a time on batches this small is about 2x faster than vmapped large ones


@dataclass(frozen=True)
class Accuracy:
    """Mean and (population) standard deviation of ``n`` test accuracies, in [0, 1]."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, accuracies: Tensor) -> "Accuracy":
        return cls(accuracies.mean().item(), accuracies.std(unbiased=False).item(), len(accuracies))

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f}% ± {100 * self.std:.2f} (n={self.n})"


@dataclass(frozen=True)
class Evaluation:
    test_acc: Accuracy  # after training on the distilled data
    before: Accuracy  # the same networks before training


def accuracies(net: FunctionalNet, thetas: Tensor, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    """Test accuracy of each row of ``thetas`` ([N, P]) on ``(x, y)``: shape [N].

    On the CPU the networks run one at a time (``chunk_size=1``) on batches of at most
    ``CPU_TEST_BATCH`` samples, which keeps the activations in cache (same numbers)."""
    correct = torch.zeros(len(thetas), device=thetas.device)
    if not len(thetas):  # a process's empty share of a few networks
        return correct
    on_cpu = thetas.device.type == "cpu"
    batch_size = min(batch_size, CPU_TEST_BATCH) if on_cpu else batch_size
    logits_of = vmap(net.logits, in_dims=(0, None), chunk_size=1 if on_cpu else None)
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = logits_of(thetas, x[start : start + batch_size])
            correct += (logits.argmax(-1) == y[start : start + batch_size]).sum(-1)
    return correct / len(y)


def trained_networks(net: FunctionalNet, data: DistilledData, thetas0: Tensor) -> Tensor:
    """``θ_T`` of every row of ``thetas0`` ([N, P]) after the distilled steps, ``MODELS_PER_CHUNK`` at a time."""
    if not len(thetas0):
        return thetas0.clone()
    x, labels, lrs = (t.detach().to(thetas0.device) for t in (data.x, data.targets(), data.lrs()))
    return torch.cat([train(net, chunk, x, labels, lrs) for chunk in torch.split(thetas0, MODELS_PER_CHUNK)])


def evaluate(net: FunctionalNet, data: DistilledData, thetas0: Tensor, test_x: Tensor, test_y: Tensor, batch_size: int = 2048) -> Evaluation:
    """Train every row of ``thetas0`` on ``data`` and test it, ``MODELS_PER_CHUNK`` at a time."""
    before, after = test_accuracies(net, data, thetas0, test_x, test_y, batch_size)
    return Evaluation(test_acc=Accuracy.of(after), before=Accuracy.of(before))


def test_accuracies(net: FunctionalNet, data: DistilledData, thetas0: Tensor, test_x: Tensor, test_y: Tensor,
                    batch_size: int = 2048) -> tuple[Tensor, Tensor]:
    """The test accuracies ([N] each) of the rows of ``thetas0`` before and after training on ``data``."""
    before, after = [torch.zeros(0, device=thetas0.device)], [torch.zeros(0, device=thetas0.device)]
    for chunk in torch.split(thetas0, MODELS_PER_CHUNK):
        before.append(accuracies(net, chunk, test_x, test_y, batch_size))
        after.append(accuracies(net, trained_networks(net, data, chunk), test_x, test_y, batch_size))
    return torch.cat(before), torch.cat(after)
