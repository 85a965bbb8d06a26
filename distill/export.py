"""A finished run's distilled data, for use outside the run directory: ``load`` gives it to
Python code (with the network a fixed-initialisation run was learned for), ``export``
writes it as a file of plain arrays that loads without this package (``.npz``: numpy
arrays; ``.pt``: a dict of tensors for ``torch.load(..., weights_only=True)``). The
layout is documented in docs/export.md:

    x            float32 [S, m, *sample_shape]  the distilled inputs, step by step
    labels       int64 [S, m] class indices, or float32 [S, m, C] the soft targets ỹ
    lrs          float32 [T]   the learned step sizes η_t, T = S × epochs
    order        int64 [T]     the step each training step t uses: s(t) = t mod S
    epochs       int64 []      passes over the S steps
    num_classes  int64 []      C
    init.NAME    float32       fixed and pretrained-fixed runs: the initial weights θ₀ of
                               the network (its parameters by ``named_parameters`` name)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .choices import BASELINES
from .config import Config, validate
from .errors import UserError, unknown
from .files import atomic_write, check_writable
from .functional import FunctionalNet
from .methods.bilevel import read_init
from .models import build_model
from .rundir import RunDir
from .synthetic import DistilledData

FORMATS = ("npz", "pt")
TRAINING_SETS = ", ".join(name for name in BASELINES if name != "knn")  # the baselines that write a distilled.pt


@dataclass(frozen=True)
class DistilledRun:
    """A finished run's distilled ``data`` (``DistilledData``: ``replay(model)``,
    ``as_dataset()``), its ``config`` and, for fixed and pretrained-fixed runs, the
    ``initial`` weights θ₀ [P] of the network the data was learned for."""

    path: Path
    config: Config
    data: DistilledData
    initial: Tensor | None

    def model(self) -> nn.Module:
        """The config's network with the initial weights θ₀ the data was learned for (a new
        module at every call); ``run.data.replay(run.model())`` trains it as ``distill eval``."""
        if self.initial is None:
            raise UserError(f"{self.path} holds no initial network (init.pt): only fixed and pretrained_fixed distillation runs "
                            f"are learned for one network; replay the data on a network of your own")
        module = build_model(self.config.model.name, tuple(self.data.x.shape[2:]), self.data.num_classes,
                             **self.config.model.options)
        with torch.no_grad():
            for parameter, value in zip(module.parameters(), FunctionalNet.of(module).unflatten(self.initial).values()):
                parameter.copy_(value)
        return module


def load(path: str | Path) -> DistilledRun:
    """The distilled data of the finished run directory ``path``; a directory without any
    (not a run, unfinished, continual, kNN or a kernel method) is a ``UserError``."""
    run = RunDir(path)
    config = validate(run.read_config())
    if not run.distilled.is_file():
        if not run.metrics.exists():
            raise UserError(f"{run.path} has not finished: its distilled data (distilled.pt) is written at the end "
                            f"(continue it: distill run -o {run.path} --resume)")
        raise UserError(f"{run.path} is a {config.method} run: it holds no distilled training set (distilled.pt); "
                        f"distillation runs and the {TRAINING_SETS} baselines do")
    data = DistilledData.load(run.distilled)
    initial = None
    if run.init.exists():
        module = build_model(config.model.name, tuple(data.x.shape[2:]), data.num_classes, **config.model.options)
        initial = read_init(run, config, FunctionalNet.of(module).num_params)
    return DistilledRun(run.path, config, data, initial)


def export_arrays(run: DistilledRun) -> dict[str, Tensor]:
    """The arrays of the documented layout (the module's docstring), on the CPU."""
    data = run.data
    arrays = {
        "x": data.x.detach().cpu().float(),
        "labels": data.targets().detach().cpu(),
        "lrs": data.lrs().detach().cpu().float(),
        "order": torch.arange(len(data.raw_lrs)) % data.steps,
        "epochs": torch.tensor(data.epochs),
        "num_classes": torch.tensor(data.num_classes),
    }
    if run.initial is not None:
        arrays.update({f"init.{name}": p.detach().clone() for name, p in run.model().named_parameters()})
    return arrays


def export_target(run: DistilledRun, fmt: str | None = None, out: str | Path | None = None,
                  overwrite: bool = False) -> tuple[str, Path]:
    """The format and the file of an export, checked before it is written: ``fmt`` one of
    ``FORMATS`` (default: ``out``'s suffix, else ``npz``), ``out`` a writable file path
    (default ``RUN_DIR/export.FMT``) that does not exist yet unless ``overwrite``."""
    suffix = None if out is None else Path(out).suffix.lower().lstrip(".")
    fmt = fmt or (suffix if suffix in FORMATS else "npz")
    if fmt not in FORMATS:
        raise unknown("export format", fmt, FORMATS)
    if suffix in FORMATS and suffix != fmt:
        raise UserError(f"-o {out} names a .{suffix} file, but the format is {fmt}; name a .{fmt} file or pass --format {suffix}")
    path = Path(out) if out is not None else run.path / f"export.{fmt}"
    if path.is_dir():
        raise UserError(f"-o {path} is a directory; name a file in it, e.g. {path / f'export.{fmt}'}")
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; pass --overwrite to replace it, or choose another -o")
    check_writable(path.parent)
    return fmt, path


def export(run: DistilledRun, fmt: str | None = None, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write ``export_arrays(run)`` atomically to ``out`` in format ``fmt`` (``export_target``;
    the folder is made if need be); returns the file's path."""
    fmt, path = export_target(run, fmt, out, overwrite)
    arrays = export_arrays(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "npz":
        atomic_write(path, lambda tmp: _save_npz(tmp, arrays))
    else:
        atomic_write(path, lambda tmp: torch.save(arrays, tmp))
    return path


def _save_npz(tmp: str, arrays: dict[str, Tensor]) -> None:
    with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a name without it
        np.savez(f, **{name: value.numpy() for name, value in arrays.items()})
