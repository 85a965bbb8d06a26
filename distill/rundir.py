"""The run directory: the files every command writes and reads (DESIGN.md, "Run directory").

``config.yaml`` (resolved config), ``checkpoint.pt`` (resumable state), ``distilled.pt``,
``init.pt`` (the fixed initial weights, for fixed and pretrained-fixed runs), ``log.csv``,
``metrics.json``, ``grid.png`` (images) or ``words.txt`` (text), and for learned labels
``labels.csv``; a kernel method's run holds ``support.pt`` instead of ``distilled.pt``.
``curves.png`` draws the log, ``tensorboard/`` mirrors it (``run.tensorboard``), and
``distill export`` writes ``export.npz`` or ``export.pt``. Every file is written atomically
(``atomic_write``): a reader, or a run killed while it writes, sees the old file or the
new one, never half of one. A directory that holds any of these is a run, and is never
overwritten without ``--resume`` or ``--overwrite``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from .config import read_yaml
from .errors import UserError
from .files import TEMPORARY, check_writable, load_tensors, save_tensors, write_json, write_text

LOG_FIELDS = (
    "iteration", "epoch", "loss", "lr_min", "lr_mean", "lr_max", "outer_lr", "grad_norm_max", "seconds", "test_acc", "select_acc",
)
ARTEFACTS = (
    "config.yaml", "checkpoint.pt", "distilled.pt", "init.pt", "best.pt", "log.csv", "metrics.json", "grid.png",
    "labels.csv", "words.txt", "continual.json", "continual.png", "memory.pt", "memory", "support.pt",
    "curves.png", "tensorboard", "export.npz", "export.pt",
)


class RunDir:
    """Paths and readers/writers of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.checkpoint = self.path / "checkpoint.pt"
        self.distilled = self.path / "distilled.pt"
        self.init = self.path / "init.pt"
        self.best = self.path / "best.pt"
        self.log = self.path / "log.csv"
        self.metrics = self.path / "metrics.json"
        self.grid = self.path / "grid.png"
        self.labels = self.path / "labels.csv"
        self.words = self.path / "words.txt"
        self.support = self.path / "support.pt"
        self.curves = self.path / "curves.png"
        self.tensorboard = self.path / "tensorboard"

    def artefacts(self) -> list[str]:
        """The names of the run files (``ARTEFACTS``) that exist in the directory."""
        return [name for name in ARTEFACTS if (self.path / name).exists()]

    def claim(self, resume: bool = False, overwrite: bool = False, resumable: bool = True) -> None:
        """Check, before any work, that a run may write here: a fresh run needs a directory
        without run files (or ``overwrite``); a resumed one needs its ``config.yaml``. The
        directory (or the first existing folder above it) must be writable. ``resumable``:
        whether the message may suggest ``--resume`` (baselines cannot resume)."""
        if resume and overwrite:
            raise UserError("--resume continues the run in the directory and --overwrite replaces it: choose one")
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"-o {self.path} is a file, not a directory")
        if resume:
            self.read_config()
        elif not overwrite and (found := self.artefacts()):
            state = "a finished run" if self.metrics.exists() else "an unfinished run"
            resume_hint = "" if self.metrics.exists() or not resumable else "pass --resume to continue it, "
            raise UserError(f"{self.path} already holds {state}; {resume_hint}pass --overwrite to replace it, "
                            f"or choose another -o (it holds {', '.join(found)})")
        check_writable(self.path)

    def create(self, overwrite: bool = False) -> None:
        """Make the directory; with ``overwrite``, first remove the run files a run left in
        it (nothing else). Leftover temporary files of a killed write of a run file are removed."""
        self.path.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in self.artefacts():
                target = self.path / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
        for name in ARTEFACTS:
            for leftover in self.path.glob(f".{name}{TEMPORARY}*"):
                leftover.unlink()

    def write_config(self, config: dict[str, Any]) -> None:
        write_text(self.config, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        if not self.config.is_file():
            raise UserError(f"{self.path} is not a run directory: {self.config.name} is missing")
        return read_yaml(self.config)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics, metrics)

    def read_metrics(self, required: tuple[str, ...] = ()) -> dict[str, Any]:
        """``metrics.json``, which must hold the keys ``required``."""
        if not self.metrics.exists():
            raise UserError(f"{self.metrics} is missing: the run has not finished (resume it with --resume)")
        try:
            metrics = json.loads(self.metrics.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{self.metrics} is corrupt ({error}); resume the run to rewrite it: distill run -o {self.path} --resume") from None
        if not isinstance(metrics, dict):
            raise UserError(f"{self.metrics} is corrupt: it holds a {type(metrics).__name__}, not a mapping")
        missing = [key for key in required if key not in metrics]
        if missing:
            raise UserError(f"{self.metrics} is corrupt or was written by another program: it lacks {', '.join(missing)}")
        return metrics

    def write_labels(self, labels, class_names) -> None:
        """The learned label matrix: one row per synthetic sample (``step, index``, then one
        column per class), readable back by ``synthetic.read_soft_labels``."""
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(["step", "index", *class_names])
        for s, step in enumerate(labels.tolist()):
            for j, row in enumerate(step):
                writer.writerow([s, j, *(f"{v:.6g}" for v in row)])
        write_text(self.labels, out.getvalue())

    def start_log(self, keep_until: int = 0, fields: tuple[str, ...] = LOG_FIELDS) -> None:
        """A fresh ``log.csv`` with the columns ``fields`` (a method's own; the distillation's
        by default), keeping the rows of iterations ``≤ keep_until`` (for a resume)."""
        rows = [r for r in self.read_log() if int(r["iteration"]) <= keep_until] if keep_until else []
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.log, out.getvalue())

    def append_log(self, row: dict[str, Any]) -> None:
        """One row, in the columns of the log's header."""
        with open(self.log, newline="") as f:
            fields = next(csv.reader(f))
        with open(self.log, "a", newline="") as f:
            csv.DictWriter(f, fields).writerow(row)

    def read_log(self) -> list[dict[str, str]]:
        """The rows of ``log.csv``. A last row without its line end (a run killed while it
        appended) is dropped; any other malformed row is a ``UserError``."""
        if not self.log.exists():
            return []
        try:
            text = self.log.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read {self.log} ({error})") from None
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        for line, row in enumerate(rows, start=2):
            try:
                int(row["iteration"]), float(row["loss"]), float(row["seconds"])
                [float(value) for key, value in row.items() if key != "iteration" and value not in ("", None)]
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{self.log} is corrupt at line {line}; delete the line to go on") from None
        return rows

    def save_checkpoint(self, iteration: int, data, optimizer, schedule, sampler, seconds: float, fingerprint: str) -> None:
        """A distillation's resumable state after ``iteration`` completed iterations, marked
        with the ``fingerprint`` of the config that wrote it."""
        self.write_checkpoint({
            "config": fingerprint,
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
        save_tensors(self.checkpoint, state)

    def read_checkpoint(self, required: set[str], map_location: Any = "cpu") -> dict[str, Any]:
        """``checkpoint.pt`` with at least the keys ``required``; a missing or corrupt file is a UserError."""
        if not self.checkpoint.exists():
            raise UserError(f"no checkpoint at {self.checkpoint}: the run never saved one{self.restart_advice()}")
        state = load_tensors(self.checkpoint, "the checkpoint", map_location, self.restart_advice())
        missing = required - set(state) if isinstance(state, dict) else required
        if missing:
            raise UserError(f"the checkpoint {self.checkpoint} is corrupt: it lacks {', '.join(sorted(missing))}{self.restart_advice()}")
        return state

    def restart_advice(self) -> str:
        """How to start the run in this directory afresh, replacing what it holds."""
        return f"; start it again with: distill run {self.config} -o {self.path} --overwrite"

    def keep_best(self, state: dict[str, Any]) -> None:
        """``best.pt``: the data ``eval.select: best_train`` keeps."""
        save_tensors(self.best, state)

    def load_best(self, map_location: Any = "cpu") -> dict[str, Any]:
        return load_tensors(self.best, "the kept data (eval.select: best_train)", map_location)

    def checkpointed_iteration(self) -> int | None:
        """The iteration a ``--resume`` restarts from, or None without a readable checkpoint."""
        try:
            return int(load_tensors(self.checkpoint, "the checkpoint")["iteration"])
        except (UserError, KeyError, TypeError, ValueError):
            return None


class FollowerRun(RunDir):
    """The run directory as a process of a distributed run other than rank 0 sees it: it
    reads what rank 0 wrote (the config and checkpoint of a resumed run, the log) and writes
    nothing; the data ``eval.select: best_train`` keeps stays in memory."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.kept: dict[str, Any] | None = None

    def _written_by_rank_0(self, *args: Any, **kwargs: Any) -> None:
        """Rank 0 claims and makes the directory and writes every run file."""

    claim = create = write_config = write_metrics = write_labels = _written_by_rank_0
    start_log = append_log = save_checkpoint = write_checkpoint = _written_by_rank_0

    def keep_best(self, state: dict[str, Any]) -> None:
        self.kept = {k: v.clone() if hasattr(v, "clone") else v for k, v in state.items()}

    def load_best(self, map_location: Any = "cpu") -> dict[str, Any]:
        return self.kept if self.kept is not None else super().load_best(map_location)

    def close(self) -> None:
        """Nothing to finish: a follower draws no curves."""
