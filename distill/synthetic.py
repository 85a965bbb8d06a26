"""DistilledData: the learned synthetic training set.

``n`` samples arranged as ``S`` steps of ``m = n / S`` samples, their labels, and one raw
learning rate ``r_t`` per step and epoch (``T = S × epochs``), with ``η_t = softplus(r_t)``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from .errors import UserError
from .files import first_line, load_tensors, save_tensors
from .functional import FunctionalNet
from .unroll import train


def inverse_softplus(y: float) -> float:
    """``r`` with ``softplus(r) = log(1 + e^r) = y``, i.e. ``r = log(e^y − 1)``."""
    return y + math.log(-math.expm1(-y))


def round_robin_labels(n: int, num_classes: int) -> Tensor:
    """Class ``i mod C`` for sample ``i``: every step of ``≥ C`` samples covers every class."""
    return torch.arange(n) % num_classes


class DistilledData(nn.Module):
    """Synthetic inputs ``x`` ([S, m, *sample_shape]), labels ([S, m] class indices, or
    [S, m, C] real-valued vectors) and raw learning rates ([S × epochs])."""

    def __init__(self, x: Tensor, labels: Tensor, raw_lrs: Tensor, num_classes: int, label_softmax: bool = False) -> None:
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
        self.label_softmax = label_softmax

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
        soft_labels: Tensor | None = None,
        label_softmax: bool = False,
    ) -> "DistilledData":
        """``n`` samples in ``steps`` steps with round-robin classes, all learning rates
        ``lr``. Inputs are drawn from N(0, 1), or, given ``real = (x, y)``, copied from random
        real samples of each sample's class. Labels are the class indices, or the learnable
        ``soft_labels`` ([n, C]) when given."""
        if n % steps:
            raise UserError(f"synthetic.n = {n} is not divisible by synthetic.steps = {steps}")
        classes = round_robin_labels(n, num_classes)
        if real is None:
            x = torch.randn(n, *sample_shape, generator=generator)
        else:
            x = _real_samples(real, classes, generator)
        labels = classes if soft_labels is None else soft_labels
        raw = torch.full((steps * epochs,), inverse_softplus(lr))
        return cls(x.view(steps, n // steps, *sample_shape), labels.view(steps, n // steps, *labels.shape[1:]), raw, num_classes, label_softmax)

    @property
    def steps(self) -> int:
        return self.x.shape[0]

    @property
    def epochs(self) -> int:
        return len(self.raw_lrs) // self.steps

    @property
    def n(self) -> int:
        return self.x.shape[0] * self.x.shape[1]

    @property
    def learns_labels(self) -> bool:
        return self.labels.is_floating_point()

    def lrs(self) -> Tensor:
        """``η = softplus(r)``, shape [T]."""
        return F.softplus(self.raw_lrs)

    def targets(self) -> Tensor:
        """What the inner loss is trained against: class indices, the soft label vectors as
        given, or ``softmax(labels)`` when ``label_softmax``."""
        return F.softmax(self.labels, dim=-1) if self.label_softmax else self.labels

    def iter_steps(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """The ``T`` training steps in order: ``(x_s, targets_s, η_t)`` with ``s = t mod S``."""
        targets = self.targets()
        for t, lr in enumerate(self.lrs()):
            yield self.x[t % self.steps], targets[t % self.steps], lr

    def replay(self, model: nn.Module) -> nn.Module:
        """Train ``model`` in place on the data exactly as it was learned to be used, and
        return it: ``θ_{t+1} = θ_t − η_t ∇_θ ℓ(x̃_{t mod S}, ỹ_{t mod S}; θ_t)`` for ``t = 0 …
        T−1`` (every epoch the steps in order, the learned ``η_t``), plain gradient descent on
        all of ``model``'s parameters, ``ℓ`` the cross-entropy with the hard labels or the
        soft ``targets()`` (``functional.classification_loss``); the same computation as
        ``distill eval``. ``model`` takes inputs of the data's sample shape and gives
        ``num_classes`` logits; its buffers and train/eval mode are used as they are."""
        net = FunctionalNet.of(model)
        first = next(model.parameters())
        x = self.x.detach().to(first.device, first.dtype)
        targets = self.targets().detach().to(first.device)
        targets = targets.to(first.dtype) if targets.is_floating_point() else targets
        theta0 = net.flatten(dict(model.named_parameters())).detach()
        theta = train(net, theta0[None], x, targets, self.lrs().detach().to(first.device, first.dtype))[0]
        with torch.no_grad():
            for parameter, trained in zip(model.parameters(), net.unflatten(theta).values()):
                parameter.copy_(trained)
        return model

    def as_dataset(self) -> TensorDataset:
        """The ``n`` samples and their ``targets()`` as a ``TensorDataset`` of ``x`` [n,
        *sample_shape] and labels [n] (class indices) or [n, C] (soft), step after step
        (sample ``j`` of step ``s`` at index ``s·m + j``); the order of the steps and their
        learned rates are not in it (``replay`` uses them)."""
        return TensorDataset(self.x.detach().flatten(0, 1).clone(), self.targets().detach().flatten(0, 1).clone())

    def save(self, path: str | Path) -> None:
        """Write the data atomically (``DistilledData.load`` reads it back)."""
        save_tensors(path, {
            "x": self.x.detach(),
            "labels": self.labels.detach(),
            "raw_lrs": self.raw_lrs.detach(),
            "num_classes": self.num_classes,
            "label_softmax": self.label_softmax,
        })

    @classmethod
    def load(cls, path: str | Path) -> "DistilledData":
        """The data ``save`` wrote; a missing, foreign or non-finite file is a ``UserError``."""
        state = load_tensors(path, "the distilled data")
        try:
            data = cls(state["x"], state["labels"], state["raw_lrs"], int(state["num_classes"]), bool(state.get("label_softmax", False)))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise UserError(f"{path} is not a distilled-data file ({first_line(error)})") from None
        if not all(torch.isfinite(t).all() for t in (data.x, data.raw_lrs)) or (data.learns_labels and not torch.isfinite(data.labels).all()):
            raise UserError(f"the distilled data {path} holds non-finite values")
        return data

    def check_fits(self, sample_shape: tuple[int, ...], num_classes: int, path: str | Path) -> None:
        """A ``UserError`` unless the data (read from ``path``) trains a model of inputs
        ``sample_shape`` and ``num_classes`` classes: hard labels in ``[0, C)``, soft ones of length C."""
        problem = None
        if tuple(self.x.shape[2:]) != tuple(sample_shape):
            problem = f"samples of shape {tuple(self.x.shape[2:])}, not the dataset's {tuple(sample_shape)}"
        elif self.num_classes != num_classes:
            problem = f"{self.num_classes} classes, not the dataset's {num_classes}"
        elif self.learns_labels and self.labels.shape[-1] != num_classes:
            problem = f"label vectors of length {self.labels.shape[-1]}, not {num_classes}"
        elif not self.learns_labels and self.labels.numel() and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < num_classes:
            problem = f"labels outside 0..{num_classes - 1}"
        if problem:
            raise UserError(f"the distilled data {path} does not fit this run: it holds {problem}")


def initial_soft_labels(
    classes: Tensor,
    num_classes: int,
    init: str,
    smoothing: float = 0.1,
    generator: torch.Generator | None = None,
    as_logits: bool = False,
) -> Tensor:
    """Learnable label vectors [n, C] for samples of class ``classes``: ``one_hot``;
    ``smoothed`` ``(1 − ε)·onehot + ε/C``; or ``normal`` N(0, 1) entries.

    ``as_logits`` (labels used through a softmax): ``one_hot`` and ``smoothed`` become
    ``log((1 − ε)·onehot + ε/C)``, whose softmax is that smoothed vector (a one-hot
    vector has no finite logits, so ``one_hot`` uses the same ε)."""
    one_hot = F.one_hot(classes, num_classes).float()
    if init in ("one_hot", "smoothed") and as_logits:
        return torch.log((1 - smoothing) * one_hot + smoothing / num_classes)
    if init == "one_hot":
        return one_hot
    if init == "smoothed":
        return (1 - smoothing) * one_hot + smoothing / num_classes
    if init == "normal":
        return torch.randn(len(classes), num_classes, generator=generator)
    raise ValueError(f"unknown label init {init!r}")


def read_soft_labels(path: str | Path, n: int, num_classes: int) -> Tensor:
    """Label vectors [n, C] from a ``labels.csv`` written by a run (columns ``step, index,
    then one per class``) or a ``.pt`` file holding an [n, C] tensor; all finite."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"synthetic.label_file: no file at {path}")
    if path.suffix == ".pt":
        labels = load_tensors(path, "synthetic.label_file")
        if not torch.is_tensor(labels):
            raise UserError(f"synthetic.label_file {path} holds a {type(labels).__name__}, not a label tensor")
        labels = labels.float()
    else:
        try:
            rows = [row for row in csv.reader(path.read_text(encoding="utf-8").splitlines()[1:]) if row]
            labels = torch.tensor([[float(v) for v in row[2:]] for row in rows])
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise UserError(f"synthetic.label_file {path} does not hold a label matrix ({first_line(error)})") from None
    if labels.shape != (n, num_classes):
        raise UserError(f"synthetic.label_file {path} holds labels of shape {tuple(labels.shape)}, expected ({n}, {num_classes})")
    if not torch.isfinite(labels).all():
        raise UserError(f"synthetic.label_file {path} holds non-finite labels")
    return labels


def _real_samples(real: tuple[Tensor, Tensor], labels: Tensor, generator: torch.Generator | None) -> Tensor:
    """One random real sample of class ``labels[i]`` for every ``i``."""
    x, y = real
    chosen = []
    for c in labels.tolist():
        pool = torch.nonzero(y == c).flatten()
        chosen.append(pool[torch.randint(len(pool), (1,), generator=generator)])
    return x[torch.cat(chosen)].clone()
