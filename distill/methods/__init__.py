"""The table of methods: what ``method:`` in a config names, and where it is implemented.

Every method module implements ``run(config, run, resume, overwrite, on_iteration) ->
metrics`` (``run`` a checked ``RunDir``); a method whose runs hold distilled data also
``evaluate(run, config, models)`` (the kernel methods also take ``kernel_networks``). Its summary for ``distill show`` lives in
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
    a run can be resumed, whether it holds distilled data to evaluate, and whether it runs
    over several processes (its ``run`` then takes a ``group``)."""

    module: str
    summarize: Callable[[RunDir, Config], str]
    resumable: bool = True
    evaluates: bool = True
    distributed: bool = False

    def implementation(self) -> ModuleType:
        return importlib.import_module(self.module)


METHODS: dict[str, Method] = {
    "distill": Method("distill.methods.bilevel", summarize_distillation, distributed=True),
    "continual": Method("distill.methods.continual", summarize_continual, evaluates=False),
    **{name: Method("distill.methods.kernel", summarize_kernel, distributed=True) for name in KERNEL_METHODS},
    **{name: Method("distill.methods.baseline", summarize_baseline, resumable=False, evaluates=False) for name in BASELINES},
}


def distributed_methods() -> list[str]:
    """The methods that run over several processes."""
    return [name for name, entry in METHODS.items() if entry.distributed]


def method(name: str) -> Method:
    """The entry for ``name``; an unknown one is a ``UserError`` listing the valid ones."""
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]
