"""The outer loop of dataset distillation (Wang et al., Algorithm 1).

Each iteration samples ``K`` initial weight vectors and a minibatch of real data, unrolls
``T`` inner steps on the synthetic data, takes the cross-entropy of the final weights on
the real batch, back-propagates it to the synthetic data and learning rates
(``unroll.hypergradient``), and takes an Adam step. Checkpoints are written atomically;
every random draw is a pure function of ``(seed, iteration)``, so a resumed run ends
exactly where an uninterrupted one would.

Over several processes (``group``, ``distill.distributed``), every rank draws the same
``K`` initialisations and real minibatch and unrolls its own ``K/W`` of the initialisations;
the gradients of ``L = 1/K Σ_k ℓ_k`` are the mean of the ranks' (all-reduced), so every rank
takes the same Adam step and the result does not depend on how the work is split. The
networks of the periodic evaluations are split among the ranks and their accuracies gathered.
"""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from .distributed import SOLO, Group
from .errors import DivergenceError, UserError
from .evaluate import accuracies, trained_networks
from .functional import FunctionalNet
from .inits import InitSampler
from .files import first_line
from .rundir import RunDir
from .seeds import Stream, generator
from .synthetic import DistilledData
from .unroll import HyperGradient, hypergradient



@dataclass
class RealData:
    """The real training and test tensors, already on the run's device."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor


class EpochBatches:
    """Minibatch ``i`` of a shuffled pass over the training set, as a function of ``i``:
    pass ``e`` is a permutation drawn from stream ``(seed, e)``."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, min(batch_size, n), seed
        self.per_epoch = n // self.batch_size
        self._epoch, self._perm = -1, torch.empty(0)

    def indices(self, iteration: int) -> Tensor:
        epoch, j = divmod(iteration, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=generator(self.seed, Stream.BATCH, epoch))
        return self._perm[j * self.batch_size : (j + 1) * self.batch_size]


@dataclass(frozen=True)
class OuterSettings:
    """What the outer loop needs to know: Adam on the synthetic parameters with its step
    decay (``epochs`` passes over the real data in batches of ``batch_size``), ``K =
    models_per_iteration`` initial networks per iteration, the back-gradient mode and
    clipping; periodic evaluation and ``select``; how often to log and checkpoint."""

    epochs: float = 400
    batch_size: int = 1437
    lr: float = 0.02
    label_lr: float | None = None
    betas: tuple[float, float] = (0.5, 0.999)
    decay_epochs: float = 100
    decay_factor: float = 0.5
    models_per_iteration: int = 1
    backgrad: str = "stored"
    clip_grad_norm: float | None = None
    learn_data: bool = True  # False: learn only the labels and step sizes
    seed: int = 0
    eval_every: int = 0
    models_during: int = 10
    eval_batch_size: int = 2048
    select: str = "last"  # or "best_train"
    select_samples: int = 10000
    log_every: int = 10
    checkpoint_every: int | None = 100  # None: only at the end and on an interrupt
    progress: bool = False
    fingerprint: str = ""  # of the settings that wrote a checkpoint; a resume must match it

    OUTER_FIELDS = ("epochs", "batch_size", "lr", "label_lr", "betas", "decay_epochs", "decay_factor",
                    "models_per_iteration", "backgrad", "clip_grad_norm")

    @classmethod
    def of(cls, outer, **rest) -> "OuterSettings":
        """Settings from an ``outer:`` section (any object with the ``OUTER_FIELDS``) and ``rest``."""
        return cls(**{name: getattr(outer, name) for name in cls.OUTER_FIELDS}, **rest)


class InMemoryRun:
    """The engine's record of a run kept in memory (``distill(..., run=None)``): the log rows
    and the data ``best_train`` keeps; no checkpoints, no files."""

    checkpoint = best = None

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.kept: dict | None = None

    def start_log(self, keep_until: int = 0, fields: tuple[str, ...] = ()) -> None:
        self.rows = [r for r in self.rows if int(r["iteration"]) <= keep_until]

    def append_log(self, row: dict) -> None:
        self.rows.append({k: str(v) for k, v in row.items()})

    def read_log(self) -> list[dict]:
        return list(self.rows)

    def save_checkpoint(self, *args, **kwargs) -> None:
        """Nothing to write: a run in memory is not resumed (``distill(..., run=None)``)."""

    def write_checkpoint(self, state: dict) -> None:
        """Nothing to write (as ``save_checkpoint``)."""

    def keep_best(self, state: dict) -> None:
        self.kept = copy.deepcopy(state)

    def load_best(self, map_location) -> dict:
        return self.kept

    def restart_advice(self) -> str:
        return ""


def distill(
    settings: OuterSettings,
    data: DistilledData,
    net: FunctionalNet,
    sampler: InitSampler,
    real: RealData,
    run: RunDir | None = None,
    checkpoint: dict | None = None,
    on_iteration: Callable[[int], None] | None = None,
    on_log: Callable[[dict], None] | None = None,
    group: Group = SOLO,
) -> DistilledData:
    """Learn ``data`` in place for ``settings.epochs`` passes over the real data, continuing
    from ``checkpoint`` (a ``RunDir.load_checkpoint()``) when one is given. ``run`` gets the
    log rows, checkpoints and kept data (None: kept in memory, no files; on ranks other than
    0 of ``group``, a ``FollowerRun``). ``on_iteration(done)`` is called after every
    completed iteration, ``on_log(row)`` with every log row."""
    outer = settings
    run = run if run is not None else InMemoryRun()
    mine = group.split(sampler.rows(outer.models_per_iteration), "the number of initial networks per iteration "
                       "(outer.models_per_iteration; init.kind fixed trains one)")
    batches = EpochBatches(len(real.train_y), outer.batch_size, settings.seed)
    iterations = math.ceil(outer.epochs * batches.per_epoch)
    decay_every = max(1, round(outer.decay_epochs * batches.per_epoch))
    optimizer = torch.optim.Adam(parameter_groups(data, outer.label_lr), lr=outer.lr, betas=outer.betas)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay_every, gamma=outer.decay_factor)
    start, seconds_before = 0, 0.0
    if checkpoint is not None:
        if checkpoint.get("config", settings.fingerprint) != settings.fingerprint:
            raise UserError(f"the checkpoint {run.checkpoint} was written by a run of another config{run.restart_advice()}")
        start, seconds_before = restore(checkpoint, data, optimizer, schedule, run, iterations)
    selection = BestOnTrain(settings, real, run, start, data) if settings.select == "best_train" else None
    run.start_log(keep_until=start)

    clock = time.perf_counter() - seconds_before
    saved = start  # the iteration of the checkpoint on disk: only finite state is ever saved

    def save(done: int) -> None:
        nonlocal saved
        if finite_state(data, optimizer):
            run.save_checkpoint(done, data, optimizer, schedule, sampler, time.perf_counter() - clock, settings.fingerprint)
            saved = done

    if checkpoint is None:
        save(0)
    progress = tqdm(range(start, iterations), initial=start, total=iterations, desc="distill",
                    disable=not (settings.progress and group.main))
    completed, grad_norm_max = start, 0.0
    try:
        for iteration in progress:
            theta0 = sampler.sample(outer.models_per_iteration, iteration)[mine].to(real.train_x.device)
            idx = batches.indices(iteration).to(real.train_x.device)
            result = hypergradient(
                net, theta0, data.x, data.targets(), data.lrs(), real.train_x[idx], real.train_y[idx],
                mode=outer.backgrad, learn_labels=data.learns_labels,
            )
            group.mean_([g for g in (result.loss, result.x, result.lrs, result.labels) if g is not None])
            if not all(torch.isfinite(g).all() for g in (result.loss, result.x, result.lrs, result.labels) if g is not None):
                save(completed)
                raise DivergenceError(
                    f"the distillation loss diverged (loss {result.loss.item():.4g}) at iteration {iteration + 1}; "
                    f"the last good state (iteration {saved}) is saved in {run.checkpoint}"
                )
            with deferred_interrupts():
                grad_norm = apply_gradients(data, result, optimizer, settings.learn_data, outer.clip_grad_norm)
                grad_norm_max = max(grad_norm_max, grad_norm)
                schedule.step()
                done = completed = iteration + 1

            every = settings.eval_every
            evaluate_now = every > 0 and (done % every == 0 or (selection is not None and done == iterations))
            if evaluate_now or done % settings.log_every == 0 or done == iterations:
                acc = select_acc = None
                if evaluate_now:
                    held = sampler.held_out(settings.models_during)
                    trained = trained_networks(net, data, held[group.share(len(held))].to(real.train_x.device))
                    acc = group.gather(accuracies(net, trained, real.test_x, real.test_y, settings.eval_batch_size)).mean().item()
                    if selection is not None:
                        select_acc = selection.score(net, trained, settings.eval_batch_size, group)
                row = _log_row(done, done / batches.per_epoch, result.loss, data, optimizer, grad_norm_max,
                               time.perf_counter() - clock, acc, select_acc)
                with deferred_interrupts():
                    run.append_log(row)
                    if select_acc is not None and selection.offer(select_acc, data):
                        save(done)
                grad_norm_max = 0.0
                progress.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr_mean']:.4f}")
                if on_log is not None:
                    on_log(row)
            if (settings.checkpoint_every and done % settings.checkpoint_every == 0) or done == iterations:
                save(done)
            if on_iteration is not None:
                on_iteration(done)
    except KeyboardInterrupt:
        save(completed)
        raise
    finally:
        progress.close()
    if selection is not None:
        selection.restore(data)
    return data


def restore(checkpoint: dict, data: DistilledData, optimizer: torch.optim.Optimizer, schedule, run: RunDir,
            iterations: int) -> tuple[int, float]:
    """Load a checkpoint's state into the run's objects and return its (iteration, seconds);
    a checkpoint of another run (other shapes, parameter groups, a later iteration than the
    run has) or with non-finite state is a ``UserError``."""
    advice = run.restart_advice()
    iteration, seconds = checkpoint_progress(checkpoint, run, iterations)
    try:
        data.load_state_dict(checkpoint["data"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise UserError(f"the checkpoint {run.checkpoint} does not belong to this run ({first_line(error)}){advice}") from None
    if not finite_state(data, optimizer):
        raise UserError(f"the checkpoint {run.checkpoint} holds non-finite state, which no run saves{advice}")
    return iteration, seconds


def checkpoint_progress(checkpoint: dict, run: RunDir, last: int, unit: str = "iteration") -> tuple[int, float]:
    """A checkpoint's ``(iteration, seconds)``, checked: an iteration (step, block: ``unit``)
    in ``0..last`` and a finite, non-negative time; anything else is a ``UserError``."""
    advice = run.restart_advice()
    iteration, seconds = checkpoint.get("iteration"), checkpoint.get("seconds")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or not 0 <= iteration <= last:
        raise UserError(f"the checkpoint {run.checkpoint} is corrupt: {unit} {iteration!r} is not one of this run's "
                        f"0..{last}{advice}")
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise UserError(f"the checkpoint {run.checkpoint} is corrupt: seconds {seconds!r} is not a time{advice}")
    return iteration, float(seconds)

def finite_state(data: DistilledData, optimizer: torch.optim.Optimizer) -> bool:
    """Whether the synthetic parameters and Adam's moments are all finite."""
    tensors = [*data.parameters()] + [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    return all(torch.isfinite(t).all() for t in tensors)


class BestOnTrain:
    """``eval.select: best_train``: of the data at the periodic evaluations, keep (in
    ``best.pt``) the one whose held-out networks, trained on it, score the highest accuracy
    ``1/M Σ_m 1[argmax f(x_m; θ_T) = y_m]`` on ``M = eval.select_samples`` real *training*
    samples, drawn once from stream ``(seed, Stream.SELECT)``; the test split is never
    looked at. On a resume from iteration ``start``, its best score so far is read back from
    ``log.csv``, and the kept data is checked to load into ``data``."""

    def __init__(self, settings: OuterSettings, real: RealData, run: RunDir | InMemoryRun, start: int, data: DistilledData) -> None:
        chosen = torch.randperm(len(real.train_y), generator=generator(settings.seed, Stream.SELECT))[: settings.select_samples]
        chosen = chosen.to(real.train_x.device)
        self.x, self.y, self.run = real.train_x[chosen], real.train_y[chosen], run
        scores = [float(r["select_acc"]) for r in run.read_log() if r.get("select_acc") and int(r["iteration"]) <= start]
        self.best = max(scores, default=-1.0)
        if scores:
            self.restore(copy.deepcopy(data))

    def score(self, net: FunctionalNet, trained: Tensor, batch_size: int, group: Group = SOLO) -> float:
        """The mean accuracy of the networks ``trained`` (this rank's share of them) on the samples."""
        return round(group.gather(accuracies(net, trained, self.x, self.y, batch_size)).mean().item(), 5)

    def offer(self, score: float, data: DistilledData) -> bool:
        """Keep ``data`` if ``score`` beats every earlier one; says whether it did."""
        if score <= self.best:
            return False
        self.best = score
        self.run.keep_best(data.state_dict())
        return True

    def restore(self, data: DistilledData) -> None:
        """Load the kept data into ``data`` (in place)."""
        state = self.run.load_best(data.x.device)
        try:
            data.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, AttributeError) as error:
            raise UserError(f"the kept data {self.run.best} does not belong to this run ({first_line(error)})") from None


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back until the block is done, so that an interrupt never
    lands between an update and the count of completed iterations."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, frame: caught.append(number)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


def parameter_groups(data: DistilledData, label_lr: float | None) -> list[dict]:
    """Adam's parameter groups: everything at the outer lr, or, given ``label_lr``, the
    learned labels in a group of their own at that lr (decayed by the same schedule)."""
    if label_lr is None or not data.learns_labels:
        return [{"params": list(data.parameters())}]
    return [{"params": [data.x, data.raw_lrs]}, {"params": [data.labels], "lr": label_lr}]


def apply_gradients(
    data: DistilledData, result: HyperGradient, optimizer: torch.optim.Optimizer, learn_data: bool, max_norm: float | None = None
) -> float:
    """One Adam step on the synthetic parameters, the gradients chained through
    ``η = softplus(r)`` and, for soft labels, through ``targets()``. Given ``max_norm``
    ``c``, the gradient ``g`` of all of them together is first rescaled to
    ``g · min(1, c / ‖g‖₂)``. Returns ``‖g‖₂`` before rescaling."""
    optimizer.zero_grad(set_to_none=True)
    if learn_data:
        data.x.grad = result.x.clone()  # clipping rescales .grad in place
    outputs, grads = [data.lrs()], [result.lrs]
    if data.learns_labels:
        outputs.append(data.targets())
        grads.append(result.labels)
    torch.autograd.backward(outputs, grads)
    norm = torch.nn.utils.clip_grad_norm_(list(data.parameters()), math.inf if max_norm is None else max_norm)
    optimizer.step()
    return norm.item()


def _log_row(
    done: int, epoch: float, loss: Tensor, data: DistilledData, optimizer, grad_norm_max: float, seconds: float,
    acc: float | None, select_acc: float | None,
) -> dict:
    lrs = data.lrs().detach()
    return {
        "iteration": done,
        "epoch": round(epoch, 4),
        "loss": loss.item(),
        "lr_min": lrs.min().item(),
        "lr_mean": lrs.mean().item(),
        "lr_max": lrs.max().item(),
        "outer_lr": optimizer.param_groups[0]["lr"],
        "grad_norm_max": f"{grad_norm_max:.4g}",
        "seconds": round(seconds, 3),
        "test_acc": "" if acc is None else round(acc, 5),
        "select_acc": "" if select_acc is None else round(select_acc, 5),
    }
