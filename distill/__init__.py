"""distill: dataset distillation in PyTorch.

The public API, imported on first use (``import distill`` alone loads neither torch nor
scikit-learn): ``Distiller`` (fit/score/save/load, scikit-learn style), ``load_config``/
``Config`` (the YAML schema), ``run_experiment`` (a config into a run directory),
``DistilledData`` (the learned set), ``evaluate`` and ``load`` (a finished run's distilled
data and the network it was learned for: ``distill.export``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
_EXPORTS = {
    "Distiller": "api",
    "Config": "config",
    "load_config": "config",
    "run_experiment": "experiment",
    "DistilledData": "synthetic",
    "evaluate": "evaluate",
    "load": "export",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
