"""The support set of a kernel method (KIP, Label Solve): ``n`` inputs in the preprocessed
space the kernel sees, and their regression labels ``y_s`` ([n, C]; one-hot and mean-centred
at the start, ``e_c − 1/C``), with the class each sample was drawn from. ``support.pt``
holds it; it loads with ``torch.load(..., weights_only=True)``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import UserError
from .files import first_line, load_tensors, save_tensors
from .krr import centred_one_hot
from .synthetic import round_robin_labels

FORMAT = "distill-support"


class SupportSet(nn.Module):
    """Learnable support inputs ``x`` ([n, *sample_shape]) and labels ``y`` ([n, C]);
    ``classes`` ([n]) is the class each sample started as."""

    def __init__(self, x: Tensor, labels: Tensor, classes: Tensor, learn_labels: bool) -> None:
        super().__init__()
        if labels.ndim != 2 or len(labels) != len(x) or classes.shape != (len(x),):
            raise ValueError(f"labels {tuple(labels.shape)} and classes {tuple(classes.shape)} do not match inputs {tuple(x.shape)}")
        self.x = nn.Parameter(x)
        self.y = nn.Parameter(labels, requires_grad=learn_labels)
        self.register_buffer("classes", classes)

    @classmethod
    def from_real(cls, x: Tensor, y: Tensor, n: int, num_classes: int, learn_labels: bool, generator: torch.Generator) -> "SupportSet":
        """``n`` real samples, sample ``i`` of class ``i mod C`` (class balanced when ``C``
        divides ``n``), drawn without replacement within its class, with centred one-hot labels."""
        classes = round_robin_labels(n, num_classes)
        chosen = torch.empty(n, dtype=torch.long)
        for c in range(num_classes):
            pool = torch.nonzero(y == c).flatten()
            slots = torch.nonzero(classes == c).flatten()
            if len(pool) < len(slots):
                raise UserError(f"class {c} has {len(pool)} training samples, fewer than the {len(slots)} support samples it needs")
            chosen[slots] = pool[torch.randperm(len(pool), generator=generator)[: len(slots)]]
        return cls(x[chosen].clone(), centred_one_hot(classes, num_classes, x.dtype), classes, learn_labels)

    @classmethod
    def from_noise(cls, shape: tuple[int, ...], n: int, num_classes: int, learn_labels: bool, generator: torch.Generator) -> "SupportSet":
        """``n`` N(0, 1) inputs with round-robin classes and centred one-hot labels."""
        classes = round_robin_labels(n, num_classes)
        return cls(torch.randn(n, *shape, generator=generator), centred_one_hot(classes, num_classes), classes, learn_labels)

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def num_classes(self) -> int:
        return self.y.shape[1]

    @property
    def learns_labels(self) -> bool:
        return self.y.requires_grad

    def learnable(self) -> list[nn.Parameter]:
        return [p for p in (self.x, self.y) if p.requires_grad]

    def predicted_classes(self) -> Tensor:
        """``argmax_c y_c``: the class each label now points to."""
        return self.y.detach().argmax(-1)

    def save(self, path: str | Path) -> None:
        save_tensors(path, {"format": FORMAT, "x": self.x.detach().cpu(), "labels": self.y.detach().cpu(),
                            "classes": self.classes.cpu(), "learn_labels": self.learns_labels})

    @classmethod
    def load(cls, path: str | Path) -> "SupportSet":
        """The set ``save`` wrote; a foreign or non-finite file is a ``UserError``."""
        state = load_tensors(path, "the support set")
        try:
            if state["format"] != FORMAT:
                raise ValueError(f"its format is {state['format']!r}")
            support = cls(state["x"], state["labels"], state["classes"], bool(state["learn_labels"]))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise UserError(f"{path} is not a support-set file ({first_line(error)})") from None
        if not (torch.isfinite(support.x).all() and torch.isfinite(support.y).all()):
            raise UserError(f"the support set {path} holds non-finite values")
        return support

    def check_fits(self, sample_shape: tuple[int, ...], num_classes: int, path: str | Path) -> None:
        if tuple(self.x.shape[1:]) != tuple(sample_shape) or self.num_classes != num_classes:
            raise UserError(f"the support set {path} holds {tuple(self.x.shape[1:])} samples of {self.num_classes} classes, "
                            f"not the dataset's {tuple(sample_shape)} of {num_classes}")
