"""From a config to a finished run directory, and back: the three entry points the CLI and
the Python API use, each dispatching through the method table (``distill.methods``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .board import board_folder
from .choices import KERNEL_METHODS
from .config import Config, validate
from .errors import UserError
from .methods import distributed_methods, method
from .report import summarize_views
from .monitor import MonitoredRun
from .rundir import FollowerRun, RunDir

if TYPE_CHECKING:
    from .distributed import Group


def run_experiment(
    config: Config,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    on_iteration: Callable[[int], None] | None = None,
    tensorboard: str | Path | None = None,
    group: Group | None = None,
) -> dict[str, Any]:
    """Run ``config`` into the run directory ``out`` and return its metrics.

    A directory that already holds a run is refused unless ``resume`` (continue from its
    ``checkpoint.pt``; its own ``config.yaml`` must equal ``config``) or ``overwrite``
    (replace its run files once the new run's set-up has succeeded). ``on_iteration(done)``
    is called after every outer iteration (continual runs: after every task). The log is
    drawn to ``curves.png`` as it grows; TensorBoard events go to ``tensorboard`` (default,
    with ``run.tensorboard``: ``out/tensorboard``). ``group`` (``distributed.join()``): the
    processes of a distributed run, which must agree on the config and the command; rank 0
    claims and writes the directory (None: this process alone).
    """
    from .distributed import SOLO

    group = group or SOLO
    entry = method(config.method)
    if group.distributed:
        group.agree(f"{config.model_dump_json()} {Path(out).resolve()} resume={resume} overwrite={overwrite}",
                    "the config, the run directory or --resume/--overwrite")
        if not entry.distributed:
            raise UserError(f"method {config.method} runs in one process; start it without torchrun "
                            f"(distributed runs: {', '.join(distributed_methods())})")
    if not group.main:
        run: RunDir = FollowerRun(out)
    else:
        if tensorboard is None and config.run.tensorboard:
            tensorboard = RunDir(out).tensorboard
        run = MonitoredRun(out, None if tensorboard is None else board_folder(tensorboard))
    claim_error = None
    try:
        run.claim(resume, overwrite, resumable=entry.resumable)
        if resume and group.main and validate(run.read_config()) != config:
            raise UserError(f"cannot resume {run.path} with a different config; omit CONFIG to use the run's own")
    except UserError as error:
        claim_error = error
    group.settle(claim_error)
    spread = {"group": group} if entry.distributed else {}
    try:
        return entry.implementation().run(config, run, resume=resume, overwrite=overwrite, on_iteration=on_iteration, **spread)
    finally:
        run.close()


def evaluate_run(out: str | Path, models: int | None = None, kernel_networks: int | None = None):
    """Re-evaluate a finished run with ``models`` held-out networks; record it in metrics.json.
    ``kernel_networks``: a kernel run's KRR accuracy with that many random networks
    (``methods.kernel.evaluate``)."""
    run = RunDir(out)
    config = validate(run.read_config())
    entry = method(config.method)
    if config.method == "continual":
        raise UserError(f"{run.path} is a continual run: it has no distilled data to evaluate; see its continual.json")
    if not entry.evaluates:
        raise UserError(f"{run.path} is a {config.method} baseline; evaluate its training set with --model NAME "
                        f"(e.g. --model {config.model.name})")
    if config.method in KERNEL_METHODS:
        return entry.implementation().evaluate(run, config, models, kernel_networks)
    if kernel_networks is not None:
        raise UserError(f"--kernel-networks goes with a KIP run of kernel.name=convnet_rf; {run.path} is a {config.method} run")
    return entry.implementation().evaluate(run, config, models)


def evaluate_transfer(out: str | Path, model: str, lr: float | str | None = None, models: int | None = None):
    """Train ``models`` random networks of architecture ``model`` on a run's distilled data
    (``methods.bilevel.evaluate_transfer``); returns the evaluation and the rate used."""
    from .methods.bilevel import evaluate_transfer as transfer

    run = RunDir(out)
    raw = run.read_config()
    kind = raw.get("method") if isinstance(raw, dict) else None
    if kind in KERNEL_METHODS:
        raise UserError(f"{run.path} is a {kind} run: its support set is measured by KRR and by transfer networks of its "
                        f"config's model (kip.transfer), which `distill eval {run.path}` retrains; --model applies to "
                        f"runs that hold a distilled.pt")
    return transfer(run, model, lr, models)


def summarize_run(out: str | Path) -> str:
    """A readable summary of a run directory: what was run, how it went, what it reached, and
    where its curves are."""
    run = RunDir(out)
    config = validate(run.read_config())
    try:
        summary = method(config.method).summarize(run, config)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise UserError(f"{run.metrics} is corrupt or was written by another program ({type(error).__name__}: {error})") from None
    views = summarize_views(run)
    return f"{summary}\n{views}" if views else summary
