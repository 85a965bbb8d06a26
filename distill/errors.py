"""Errors a user can fix. The CLI prints their message and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: a config, a path, a name. The message says what to do."""


class DivergenceError(RuntimeError):
    """The distillation loss became NaN or infinite."""


class PeerLost(RuntimeError):
    """Another process of a distributed run stopped or could not be reached (exit code 1)."""


def closest(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint for an unknown ``name``, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """A UserError for an unknown registry name, listing the valid ones."""
    choices = sorted(choices)
    return UserError(f"unknown {kind} '{name}'{closest(name, choices)}; choose one of: {', '.join(choices)}")
