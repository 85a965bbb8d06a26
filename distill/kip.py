"""The engines of the kernel methods: KIP's optimisation loop and Label Solve's pass over
the target set (Nguyen, Novak, Xiao, Lee, NeurIPS 2021, Sec. 2; Nguyen, Chen, Lee, ICLR 2021).

KIP: every step draws a class-balanced target batch ``(X_t, y_t)`` (optionally augmented)
and, for a sampled kernel, fresh random networks; computes ``K_ss`` and ``K_ts``; takes the
loss ``L = 1/(2 n_t) ‖y_t − K_ts (K_ss + λI)⁻¹ y_s‖²`` (``krr.kip_loss``) and an Adam step
on the support inputs (and labels). Label Solve: one pass over the target set in blocks of
rows (``krr.LabelSolve``). Both log, checkpoint atomically and resume exactly: every draw is
a pure function of ``(seed, step)``. Neither knows the config: they take their settings.

Over several processes (``group``, ``distill.distributed``), the kernel matrices are
computed in blocks of rows spread over the ranks and gathered (the forward pass), and the
gradient to the support set is the sum of the ranks' vector-Jacobian products of their
blocks (the backward pass); Label Solve spreads the target blocks over the ranks.
Rank 0 alone logs and writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor
from tqdm import tqdm

from .distiller import InMemoryRun, checkpoint_progress, deferred_interrupts
from .distributed import SOLO, Group
from .errors import DivergenceError, UserError
from .files import first_line
from .krr import LabelSolve, centred_one_hot, kip_loss, krr_accuracy, square_factor
from .preprocess import augment
from .rundir import RunDir
from .seeds import Stream, generator
from .support import SupportSet

LOG_FIELDS = ("iteration", "loss", "krr_acc", "targets", "seconds")


class KernelFamily(Protocol):
    """What the engines need of a kernel (``kernels.KernelSpec``): ``draw(generator)`` gives
    a function ``k(x1, x2) -> [n1, n2]``, the same one every time for an exact kernel."""

    def draw(self, generator: torch.Generator | None = None) -> Callable[[Tensor, Tensor], Tensor]: ...


@dataclass(frozen=True)
class KipSettings:
    """KIP's optimisation: ``steps`` Adam steps (``betas``) on target batches of
    ``target_batch`` samples, ridge ``reg``, at the learning rate ``lr_at(t)`` (``lr``, times
    ``decay_factor`` every ``decay_steps`` steps); augmentation ``augment`` of a
    ``augment_fraction`` of every batch; logging (with the KRR accuracy on the held-out
    samples) every ``log_every`` steps, a checkpoint every ``checkpoint_every``."""

    steps: int = 1000
    lr: float = 0.01
    decay_steps: int | None = None
    decay_factor: float = 0.5
    betas: tuple[float, float] = (0.9, 0.999)
    target_batch: int = 1000
    reg: float = 1e-6
    augment: tuple[str, ...] = ()
    augment_fraction: float = 1.0
    block: int = 1000  # rows of the held-out kernel per evaluation block
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int | None = 100
    progress: bool = False
    fingerprint: str = ""

    def lr_at(self, step: int) -> float:
        """Adam's learning rate at (0-based) step ``t``: ``lr · decay_factor^⌊t / decay_steps⌋``
        (``lr`` throughout without ``decay_steps``). A function of the step alone, so a resumed
        run continues the schedule exactly."""
        return self.lr if self.decay_steps is None else self.lr * self.decay_factor ** (step // self.decay_steps)


@dataclass
class Targets:
    """The target set in the kernel's (preprocessed) space, and the held-out samples whose
    KRR accuracy the log records. ``transform`` maps raw inputs into that space; it is used
    for augmented batches, which are augmented before it (``raw_x`` holds the raw inputs)."""

    x: Tensor
    y: Tensor
    num_classes: int
    held_x: Tensor
    held_y: Tensor
    raw_x: Tensor | None = None
    transform: Callable[[Tensor], Tensor] | None = None
    per_class: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.per_class = [torch.nonzero(self.y == c).flatten() for c in range(self.num_classes)]

    def check_batch(self, batch: int) -> None:
        """A ``UserError`` unless a class-balanced batch of ``batch`` samples can be drawn."""
        if batch > len(self.y):
            raise UserError(f"kip.target_batch = {batch} is larger than the {len(self.y)} target samples; use at most {len(self.y)}")
        need = counts(batch, self.num_classes)
        short = [c for c, members in enumerate(self.per_class) if len(members) < need[c]]
        if short:
            raise UserError(f"kip.target_batch = {batch} asks for {need[short[0]]} samples of class {short[0]}, which has "
                            f"{len(self.per_class[short[0]])}; use a smaller batch")

    def batch(self, size: int, step: int, settings: KipSettings) -> tuple[Tensor, Tensor]:
        """Step ``step``'s class-balanced batch ``(X_t, y_t)``: ``⌊size/C⌋`` samples of every
        class (one more for the first ``size mod C``), without replacement, from stream
        ``(seed, KIP_TARGETS, step)``; augmented from ``(seed, KIP_AUGMENT, step)``."""
        gen = generator(settings.seed, Stream.KIP_TARGETS, step)
        chosen = torch.cat([members[torch.randperm(len(members), generator=gen)[:k]]
                            for members, k in zip(self.per_class, counts(size, self.num_classes))])
        chosen = chosen.to(self.y.device)
        if settings.augment and self.raw_x is not None:
            raw = augment(self.raw_x[chosen], settings.augment, settings.augment_fraction,
                          generator(settings.seed, Stream.KIP_AUGMENT, step))
            return self.transform(raw), self.y[chosen]
        return self.x[chosen], self.y[chosen]


def counts(size: int, num_classes: int) -> list[int]:
    """How many of each class a balanced batch of ``size`` holds."""
    return [size // num_classes + (c < size % num_classes) for c in range(num_classes)]


def kip(
    settings: KipSettings,
    kernel: KernelFamily,
    support: SupportSet,
    targets: Targets,
    run: RunDir | None = None,
    checkpoint: dict | None = None,
    on_iteration: Callable[[int], None] | None = None,
    on_log: Callable[[dict], None] | None = None,
    group: Group = SOLO,
    eval_kernel: KernelFamily | None = None,
) -> SupportSet:
    """Learn ``support`` in place for ``settings.steps`` KIP steps, continuing from
    ``checkpoint`` (``RunDir.read_checkpoint``) when given; ``run`` gets the log rows and
    checkpoints (None: kept in memory). ``group``: the processes that share every step.
    ``eval_kernel`` (default ``kernel``) measures the held-out KRR accuracy of the log."""
    run = run if run is not None else InMemoryRun()
    targets.check_batch(settings.target_batch)
    optimizer = torch.optim.Adam(support.learnable(), lr=settings.lr, betas=settings.betas)
    start, seconds_before = restore(checkpoint, support, optimizer, run, settings) if checkpoint else (0, 0.0)
    run.start_log(keep_until=start, fields=LOG_FIELDS)
    clock = time.perf_counter() - seconds_before
    saved = start

    def save(done: int) -> None:
        nonlocal saved
        if all(torch.isfinite(p).all() for p in support.parameters()):
            run.write_checkpoint({"config": settings.fingerprint, "iteration": done, "seconds": time.perf_counter() - clock,
                                  "support": support.state_dict(), "optimizer": optimizer.state_dict()})
            saved = done

    if checkpoint is None:
        save(0)
    measure = (eval_kernel if eval_kernel is not None else kernel).draw(generator(settings.seed, Stream.KIP_EVAL_KERNEL))
    progress = tqdm(range(start, settings.steps), initial=start, total=settings.steps, desc="kip",
                    disable=not (settings.progress and group.main))
    completed = start
    try:
        for step in progress:
            x_t, y_t = targets.batch(settings.target_batch, step, settings)
            k = kernel.draw(generator(settings.seed, Stream.KIP_KERNEL, step))
            labels_t = centred_one_hot(y_t, targets.num_classes, support.x.dtype)
            for param_group in optimizer.param_groups:
                param_group["lr"] = settings.lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_and_gradients(k, support, x_t, labels_t, settings.reg, group)
            if not torch.isfinite(loss):
                save(completed)
                raise DivergenceError(f"the KIP loss diverged (loss {loss.item():.4g}) at step {step + 1}; the last good "
                                      f"state (step {saved}) is saved in {run.checkpoint}; lower kip.lr")
            with deferred_interrupts():
                optimizer.step()
                done = completed = step + 1
            if group.main and (done % settings.log_every == 0 or done == settings.steps):
                acc = krr_accuracy(measure, support.x.detach(), support.y.detach(),
                                   targets.held_x, targets.held_y, settings.reg, settings.block) if len(targets.held_y) else None
                row = {"iteration": done, "loss": loss.item(), "krr_acc": "" if acc is None else round(acc, 5),
                       "targets": done * settings.target_batch, "seconds": round(time.perf_counter() - clock, 3)}
                with deferred_interrupts():
                    run.append_log(row)
                progress.set_postfix(loss=f"{row['loss']:.4g}", acc=row["krr_acc"])
                if on_log is not None:
                    on_log(row)
            if (settings.checkpoint_every and done % settings.checkpoint_every == 0) or done == settings.steps:
                save(done)
            if on_iteration is not None:
                on_iteration(done)
    except KeyboardInterrupt:
        save(completed)
        raise
    finally:
        progress.close()
    return support


def loss_and_gradients(k: Callable[[Tensor, Tensor], Tensor], support: SupportSet, x_t: Tensor, y_t: Tensor, reg: float,
                       group: Group = SOLO) -> Tensor:
    """KIP's loss ``L`` (``krr.kip_loss``) of the target batch ``(x_t, y_t)``, its gradients
    written to ``support.x.grad`` (and ``support.y.grad`` for learned labels), which must be
    None (``zero_grad(set_to_none=True)``).

    In one process: ``K_ts = k(X_t, X_s)`` and ``K_ss = k(X_s, X_s)`` as two calls (not one on
    ``[X_s; X_t]``: autograd then never differentiates through the targets), then autograd.
    Over ``W`` ranks: rank ``r`` computes its rows of both, ``K_ts[T_r]`` and ``K_ss[S_r]``;
    the gathered matrices give ``L`` and ``∂L/∂K`` on every rank, and each rank's
    vector-Jacobian product ``⟨∂L/∂K[T_r], ∂K[T_r]/∂X_s⟩ + ⟨∂L/∂K[S_r], ∂K[S_r]/∂X_s⟩`` is
    summed over the ranks into ``∂L/∂X_s``."""
    if not group.distributed:
        loss = kip_loss(k(x_t, support.x), k(support.x, support.x), support.y, y_t, reg)
        loss.backward()
        return loss.detach()
    rows_t, rows_s = group.share(len(x_t)), group.share(support.n)
    k_ts_part, k_ss_part = k(x_t[rows_t], support.x), k(support.x[rows_s], support.x)
    k_ts = group.gather(k_ts_part.detach()).requires_grad_()
    k_ss = group.gather(k_ss_part.detach()).requires_grad_()
    loss = kip_loss(k_ts, k_ss, support.y, y_t, reg)
    loss.backward()
    torch.autograd.backward([k_ts_part, k_ss_part], [k_ts.grad[rows_t], k_ss.grad[rows_s]])
    group.sum_([support.x.grad])
    return loss.detach()


def restore(checkpoint: dict, support: SupportSet, optimizer: torch.optim.Optimizer, run, settings: KipSettings) -> tuple[int, float]:
    """Load a KIP checkpoint into ``support`` and ``optimizer``; returns its (step, seconds).
    A checkpoint of another run, or a corrupt one, is a ``UserError``."""
    advice = check_fingerprint(checkpoint, run, settings.fingerprint)
    iteration, seconds = checkpoint_progress(checkpoint, run, settings.steps, "step")
    try:
        support.load_state_dict(checkpoint["support"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise UserError(f"the checkpoint {run.checkpoint} does not belong to this run ({first_line(error)}){advice}") from None
    if not all(torch.isfinite(p).all() for p in support.parameters()):
        raise UserError(f"the checkpoint {run.checkpoint} holds non-finite state, which no run saves{advice}")
    return iteration, seconds


@dataclass(frozen=True)
class SolveSettings:
    """Label Solve: the target set in blocks of ``block`` rows, ridge ``reg``; a log row
    every ``log_every`` blocks, a checkpoint every ``checkpoint_every``."""

    reg: float = 1e-6
    block: int = 1000
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int | None = 10
    progress: bool = False
    fingerprint: str = ""


def label_solve(
    settings: SolveSettings,
    kernel: KernelFamily,
    support: SupportSet,
    targets: Targets,
    run: RunDir | None = None,
    checkpoint: dict | None = None,
    on_iteration: Callable[[int], None] | None = None,
    group: Group = SOLO,
) -> SupportSet:
    """Set ``support.y`` to the least-norm labels ``y_s*`` over the whole target set
    (``krr.LabelSolve``), one block of target rows at a time; resumable after any block.
    Over ``W`` ranks (``group``) the blocks go in rounds of ``W``: rank ``r`` factors block
    ``first + r`` on its own, ``qr([A_b | y_b]).R``, and every rank stacks the gathered
    factors into the common one, so every rank holds the factor of the blocks done."""
    run = run if run is not None else InMemoryRun()
    k = kernel.draw(generator(settings.seed, Stream.KIP_EVAL_KERNEL))
    x_s = support.x.detach()
    with torch.no_grad():
        k_ss = k(x_s, x_s)
    blocks = math.ceil(len(targets.y) / settings.block)
    state, start, seconds_before = None, 0, 0.0
    if checkpoint is not None:
        state, start, seconds_before = restore_solve(checkpoint, run, settings, blocks, support.n + targets.num_classes)
    state = state.to(k_ss) if state is not None else None
    solver = LabelSolve(k_ss, settings.reg, targets.num_classes, state, rows=min(start * settings.block, len(targets.y)))
    run.start_log(keep_until=start, fields=LOG_FIELDS)
    clock = time.perf_counter() - seconds_before

    def save(done: int) -> None:
        run.write_checkpoint({"config": settings.fingerprint, "iteration": done, "seconds": time.perf_counter() - clock,
                              "factor": solver.r.cpu()})

    def rows_of(b: int) -> slice:
        return slice(b * settings.block, min((b + 1) * settings.block, len(targets.y)))

    if checkpoint is None:
        save(0)
    progress = tqdm(total=blocks, initial=start, desc="label solve", unit="block", disable=not (settings.progress and group.main))
    completed = start
    try:
        for first in range(start, blocks, group.size):
            done = min(first + group.size, blocks)
            mine = first + group.rank
            with torch.no_grad():
                k_bs = k(targets.x[rows_of(mine)], x_s) if mine < done else k_ss[:0]
            if not torch.isfinite(k_bs).all():
                raise UserError("the kernel of the target set holds non-finite values (inf or nan); check the preprocessing")
            rows = solver.rows_of(k_bs, centred_one_hot(targets.y[rows_of(mine)] if mine < done else targets.y[:0],
                                                        targets.num_classes, k_bs.dtype))
            if group.distributed:
                rows = group.gather(square_factor(rows))
            with deferred_interrupts():
                solver.absorb(rows, sum(rows_of(b).stop - rows_of(b).start for b in range(first, done)))
                completed = done
            progress.update(done - first)
            if group.main and (done // settings.log_every > first // settings.log_every or done == blocks):
                support.y.data.copy_(solver.labels())
                acc = krr_accuracy(k, x_s, support.y.detach(), targets.held_x, targets.held_y, settings.reg, settings.block) \
                    if len(targets.held_y) else None
                row = {"iteration": done, "loss": 0.5 * solver.residual(), "krr_acc": "" if acc is None else round(acc, 5),
                       "targets": solver.rows, "seconds": round(time.perf_counter() - clock, 3)}
                with deferred_interrupts():
                    run.append_log(row)
            if (settings.checkpoint_every and done // settings.checkpoint_every > first // settings.checkpoint_every) \
                    or done == blocks:
                save(done)
            if on_iteration is not None:
                on_iteration(done)
    except KeyboardInterrupt:
        save(completed)
        raise
    finally:
        progress.close()
    support.y.data.copy_(solver.labels())
    return support


def restore_solve(checkpoint: dict, run, settings: SolveSettings, blocks: int, width: int) -> tuple[Tensor, int, float]:
    """A Label Solve checkpoint's (factor, blocks done, seconds); a foreign or corrupt one is a ``UserError``."""
    advice = check_fingerprint(checkpoint, run, settings.fingerprint)
    iteration, seconds = checkpoint_progress(checkpoint, run, blocks, "block")
    factor = checkpoint.get("factor")
    if not torch.is_tensor(factor) or factor.shape[1:] != (width,) or len(factor) > width or not torch.isfinite(factor).all():
        raise UserError(f"the checkpoint {run.checkpoint} does not belong to this run (its factor is not {width} wide){advice}")
    return factor, iteration, seconds


def check_fingerprint(checkpoint: dict, run, fingerprint: str) -> str:
    """A ``UserError`` unless the checkpoint was written by this config; returns the restart advice."""
    advice = run.restart_advice()
    if checkpoint.get("config") != fingerprint:
        raise UserError(f"the checkpoint {run.checkpoint} was written by a run of another config{advice}")
    return advice

