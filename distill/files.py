"""Writing and reading files safely: atomic writes and tensor files that cannot run code.

``atomic_write`` writes a temporary file beside the target, flushes it to disk, gives it
the user's umask and renames it over the target, so that a reader, or a process killed
while it writes, sees the old file or the new one, never half of one. ``load_tensors``
reads with ``torch.load(..., weights_only=True)``: a file can hold tensors and plain
containers, never code.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError

TEMPORARY = ".tmp-"  # the mark of atomic_write's temporary files: ``.<name>.tmp-XXXXXX<suffix>``


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, give it
    the user's umask and rename it over ``path``: readers never see half a file. The
    temporary name keeps ``path``'s suffix (matplotlib picks the format from it)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMPORARY}", suffix=path.suffix)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as error:  # name the file the user asked for, not our temporary one
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    """``text`` written atomically to ``path``."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: str | Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def save_tensors(path: str | Path, state: Any) -> None:
    """``torch.save(state)`` written atomically (load it with ``weights_only=True``)."""
    import torch  # here, so that the CLI's light commands do not load torch

    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_tensors(path: str | Path, what: str, map_location: Any = "cpu", advice: str = "") -> Any:
    """``torch.load(path, weights_only=True)``; a missing or unreadable file is a one-line
    ``UserError`` that calls it ``what`` (e.g. "the checkpoint") and ends with ``advice``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} is missing" + (" (it is a directory)" if path.is_dir() else "") + advice)
    try:
        with warnings.catch_warnings():  # torch warns of odd pickle protocols in garbage files
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location=map_location)
    except Exception as error:  # truncated, foreign, or holding more than tensors
        raise UserError(f"{what} {path} is corrupt or not a distill file ({load_failure(error)}){advice}") from None


def load_failure(error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words. (Torch's own text
    suggests ``weights_only=False``, which would let the file run code: never do that.)"""
    if isinstance(error, pickle.UnpicklingError):
        text = str(error)
        for marker in ("WeightsUnpickler error:", "Trying to load unsupported"):
            if marker in text:
                detail = text.split(marker, 1)[1] if marker.endswith(":") else marker + text.split(marker, 1)[1]
                return "not a file of plain tensors: " + detail.strip().splitlines()[0].split(". ")[0]
        return "not a file of plain tensors"
    return first_line(error).split(". ")[0]


def check_writable(path: str | Path) -> None:
    """A ``UserError`` unless files can be created in the folder ``path`` (or, when it does
    not exist yet, in the first existing folder above it, where it would be made)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {folder}: " + ("it is not a folder" if not folder.is_dir() else "permission denied"))


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (torch's unpickling errors run to a page)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
