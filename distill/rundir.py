"""The run directory: the files every command writes and reads (DESIGN.md, "Run directory").

``config.yaml`` (resolved config), ``checkpoint.pt`` (resumable state, written
atomically), ``distilled.pt``, ``log.csv``, ``metrics.json``, ``grid.png`` (images) or
``words.txt`` (text), and for learned labels ``labels.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from .config import read_yaml
from .errors import UserError

LOG_FIELDS = (
    "iteration", "epoch", "loss", "lr_min", "lr_mean", "lr_max", "outer_lr", "grad_norm_max", "seconds", "test_acc", "select_acc",
)


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` and rename the result over ``path``: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class RunDir:
    """Paths and readers/writers of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.checkpoint = self.path / "checkpoint.pt"
        self.distilled = self.path / "distilled.pt"
        self.best = self.path / "best.pt"
        self.log = self.path / "log.csv"
        self.metrics = self.path / "metrics.json"
        self.grid = self.path / "grid.png"
        self.labels = self.path / "labels.csv"
        self.words = self.path / "words.txt"

    def create(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"-o {self.path} is a file, not a directory")
        self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write(self.config, lambda tmp: Path(tmp).write_text(yaml.safe_dump(config, sort_keys=False)))

    def read_config(self) -> dict[str, Any]:
        if not self.config.exists():
            raise UserError(f"{self.path} is not a run directory: {self.config.name} is missing")
        return read_yaml(self.config)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write(self.metrics, lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2) + "\n"))

    def read_metrics(self) -> dict[str, Any]:
        if not self.metrics.exists():
            raise UserError(f"{self.metrics} is missing: the run has not finished (resume it with --resume)")
        try:
            return json.loads(self.metrics.read_text())
        except json.JSONDecodeError as error:
            raise UserError(f"{self.metrics} is corrupt ({error}); run `distill eval` or resume the run to rewrite it") from None

    def write_labels(self, labels, class_names) -> None:
        """The learned label matrix: one row per synthetic sample (``step, index``, then one
        column per class), readable back by ``synthetic.label_file``."""
        with open(self.labels, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "index", *class_names])
            for s, step in enumerate(labels.tolist()):
                for j, row in enumerate(step):
                    writer.writerow([s, j, *(f"{v:.6g}" for v in row)])

    def start_log(self, keep_until: int = 0) -> None:
        """A fresh ``log.csv``, keeping the rows of iterations ``≤ keep_until`` (for a resume)."""
        rows = [r for r in self.read_log() if int(r["iteration"]) <= keep_until] if keep_until else []
        with open(self.log, "w", newline="") as f:
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def append_log(self, row: dict[str, Any]) -> None:
        with open(self.log, "a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow(row)

    def read_log(self) -> list[dict[str, str]]:
        if not self.log.exists():
            return []
        with open(self.log, newline="") as f:
            return list(csv.DictReader(f))

    def save_checkpoint(self, iteration: int, data, optimizer, schedule, sampler, seconds: float) -> None:
        """A distillation's resumable state after ``iteration`` completed iterations."""
        self.write_checkpoint({
            "iteration": iteration,
            "seconds": seconds,
            "data": data.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "sampler": sampler.state_dict(),
        })

    def load_checkpoint(self) -> dict[str, Any]:
        """The state ``save_checkpoint`` wrote."""
        return self.read_checkpoint({"iteration", "seconds", "data", "optimizer", "schedule", "sampler"})

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write(self.checkpoint, lambda tmp: torch.save(state, tmp))

    def read_checkpoint(self, required: set[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """``checkpoint.pt`` with at least the keys ``required``; a missing or corrupt file is a UserError."""
        if not self.checkpoint.exists():
            raise UserError(f"no checkpoint at {self.checkpoint}: the run never saved one")
        try:
            state = torch.load(self.checkpoint, weights_only=True, map_location=map_location)
        except Exception as error:
            raise UserError(f"the checkpoint {self.checkpoint} is corrupt ({error}); start the run again without --resume") from None
        missing = required - set(state)
        if missing:
            raise UserError(f"the checkpoint {self.checkpoint} is corrupt: it lacks {', '.join(sorted(missing))}")
        return state
