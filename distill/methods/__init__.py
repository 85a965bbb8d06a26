"""The table of methods: what ``method:`` in a config names, and where it is implemented.

Every method module implements ``run(config, run, resume, overwrite, on_iteration) ->
metrics`` (``run`` a checked ``RunDir``); a method whose runs hold distilled data also
``evaluate(run, config, models)``. Its summary for ``distill show`` lives in
``distill.report`` (no torch). Modules are imported on first use, so looking a method up
loads nothing heavy. ``run_experiment``, ``evaluate_run`` and ``summarize_run``
(``distill.experiment``) and the CLI dispatch through ``METHODS`` and nowhere else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from ..choices import BASELINES, KERNEL_METHODS
from ..config import Config
from ..errors import unknown
from ..report import summarize_baseline, summarize_continual, summarize_distillation, summarize_kernel
from ..rundir import RunDir


@dataclass(frozen=True)
class Method:
    """One entry of the table: the module that runs it, how ``show`` summarises it, whether
    a run can be resumed, and whether it holds distilled data to evaluate."""

    module: str
    summarize: Callable[[RunDir, Config], str]
    resumable: bool = True
    evaluates: bool = True

    def implementation(self) -> ModuleType:
        return importlib.import_module(self.module)


METHODS: dict[str, Method] = {
    "distill": Method("distill.methods.bilevel", summarize_distillation),
    "continual": Method("distill.methods.continual", summarize_continual, evaluates=False),
    **{name: Method("distill.methods.kernel", summarize_kernel) for name in KERNEL_METHODS},
    **{name: Method("distill.methods.baseline", summarize_baseline, resumable=False, evaluates=False) for name in BASELINES},
}


def method(name: str) -> Method:
    """The entry for ``name``; an unknown one is a ``UserError`` listing the valid ones."""
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]
