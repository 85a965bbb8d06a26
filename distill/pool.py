"""Pool files: networks pretrained on a source dataset, for ``pretrained_*`` initialisations.

One torch file, loadable with ``torch.load(path, weights_only=True)``, holding a dict:

    format, version    "distill-pool", 1
    thetas             float32 [N, P]: the N networks' flat weight vectors (FunctionalNet order)
    test_acc           float32 [N]: each network's accuracy on the source test split
    model              {"name": ..., "options": {...}} (every option, defaults included)
    input_shape        [C, H, W];  num_classes: int;  num_params: P
    source             the source dataset config (name, root, options such as resize)
    seed, seeds        the config seed; network i started from seeds.generator(*seeds[i])
    init, pretrain     the initialisation scheme and the training settings

A pool is used only with the model, input shape and class count it was trained for;
anything else is a ``UserError`` that names both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import UserError
from .models import model_options
from .files import load_tensors, save_tensors

FORMAT, VERSION = "distill-pool", 1


@dataclass(frozen=True)
class Architecture:
    """What a weight vector means: a model with all its options, for inputs and classes."""

    name: str
    options: dict[str, Any]
    input_shape: tuple[int, int, int]
    num_classes: int
    num_params: int

    @classmethod
    def of(cls, name: str, options: dict[str, Any], input_shape, num_classes: int, num_params: int) -> "Architecture":
        """The architecture with the model's defaults filled in (and options as plain JSON values)."""
        full = json.loads(json.dumps({**model_options(name), **options}))
        return cls(name, full, tuple(int(s) for s in input_shape), int(num_classes), int(num_params))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": {"name": self.name, "options": self.options},
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "num_params": self.num_params,
        }

    def __str__(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        shape = "x".join(str(s) for s in self.input_shape)
        return f"{self.name}({options}) for {self.num_classes} classes on {shape} inputs ({self.num_params:,} parameters)"


@dataclass(frozen=True)
class Pool:
    """``N`` pretrained weight vectors and where they came from."""

    thetas: Tensor
    test_acc: Tensor
    architecture: Architecture
    meta: dict[str, Any]  # source, seed, seeds, init, pretrain

    @property
    def source(self) -> str:
        return str(self.meta.get("source", {}).get("name", "?"))

    def state(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "thetas": self.thetas, "test_acc": self.test_acc,
                **self.architecture.as_dict(), **self.meta}

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(path, self.state())

    def check(self, expected: Architecture, path: str | Path) -> None:
        """Raise a ``UserError`` naming both architectures unless the pool is for ``expected``."""
        if self.architecture != expected:
            raise UserError(
                f"the pool {path} holds {self.architecture}, pretrained on {self.source}; "
                f"this run builds {expected}. Pretrain a pool for this model and dataset "
                f"(distill pretrain CONFIG -o POOL) or change model/dataset to match the pool"
            )


def load_pool(path: str | Path) -> Pool:
    """Read a pool file; a missing, foreign or corrupt file is a ``UserError``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no pool file at {path}; create it with: distill pretrain CONFIG -o {path}")
    state = load_tensors(path, "the pool file")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a pool file (it lacks format: {FORMAT}); create one with distill pretrain")
    if state.get("version") != VERSION:
        raise UserError(f"{path} is a version {state.get('version')} pool file; this distill reads version {VERSION}")
    try:
        model = state["model"]
        architecture = Architecture(str(model["name"]), dict(model["options"]), tuple(int(s) for s in state["input_shape"]),
                                    int(state["num_classes"]), int(state["num_params"]))
        thetas, test_acc = state["thetas"], state["test_acc"]
    except KeyError as error:
        raise UserError(f"the pool file {path} is corrupt: it lacks {error}") from None
    except (TypeError, ValueError) as error:
        raise UserError(f"the pool file {path} is corrupt: its model description is malformed ({error})") from None
    if not torch.is_tensor(thetas) or not torch.is_tensor(test_acc):
        raise UserError(f"the pool file {path} is corrupt: its thetas and test_acc must be tensors")
    if thetas.ndim != 2 or thetas.shape[1] != architecture.num_params or not thetas.is_floating_point():
        raise UserError(f"the pool file {path} is corrupt: weights of shape {tuple(thetas.shape)} for {architecture.num_params} parameters")
    if not torch.isfinite(thetas).all():
        bad = sorted(set(torch.nonzero(~torch.isfinite(thetas))[:, 0].tolist()))
        raise UserError(f"the pool file {path} is corrupt: networks {', '.join(map(str, bad[:5]))}"
                        f"{' ...' if len(bad) > 5 else ''} have non-finite weights")
    meta = {k: v for k, v in state.items() if k not in ("format", "version", "thetas", "test_acc", "model", "input_shape", "num_classes", "num_params")}
    return Pool(thetas, test_acc, architecture, meta)
