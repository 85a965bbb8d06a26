"""One run over many processes: the torch.distributed set-up and the few collectives the
engines use.

Started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` in the environment), a process joins the default process group, ``gloo`` on
the CPU and ``nccl`` on CUDA, with a timeout on every collective, and, when there are GPUs,
takes GPU ``LOCAL_RANK``. A ``Group`` is what the engines see: this process's rank, the
number of processes, and the collectives (``mean_``, ``sum_``, ``gather``, ``agree``, ``settle``);
``SOLO``, the group of a process that runs alone, makes every collective a no-op, so the
engines have one code path. A collective that fails because another process stopped or can
no longer be reached raises ``PeerLost`` (exit code 1), never hangs past the timeout.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import Tensor

from .errors import PeerLost, UserError


@dataclass(frozen=True)
class Group:
    """This process's ``rank`` among ``size`` processes of one run (``local_rank`` on its
    machine). Rank 0 is the main process: it alone writes the run directory."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, total: int) -> slice:
        """This rank's contiguous part of ``total`` items: parts differ in size by at most one,
        the first ``total mod size`` ranks taking one more (``torch.tensor_split``'s split)."""
        base, extra = divmod(total, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def split(self, total: int, what: str) -> slice:
        """This rank's equal part of ``total`` items; a ``UserError`` unless ``size`` divides it."""
        if total % self.size:
            raise UserError(f"{what} is {total}, which does not divide among the {self.size} processes of this run; "
                            f"use a multiple of {self.size}")
        return self.share(total)

    def mean_(self, tensors: list[Tensor]) -> None:
        """Replace every tensor by its mean over the ranks, in place: ``t ← 1/W Σ_r t_r``."""
        if not self.distributed:
            return
        for t in tensors:
            _collective(torch.distributed.all_reduce, t)
            t.div_(self.size)

    def sum_(self, tensors: list[Tensor]) -> None:
        """Replace every tensor by its sum over the ranks, in place: ``t ← Σ_r t_r``."""
        if not self.distributed:
            return
        for t in tensors:
            _collective(torch.distributed.all_reduce, t)

    def gather(self, values: Tensor) -> Tensor:
        """The ``values`` ([n_r, ...]) of every rank, concatenated along the first dimension
        in rank order (ranks may hold different counts, e.g. their ``share`` of the rows)."""
        if not self.distributed:
            return values
        counts = [torch.zeros(1, dtype=torch.long, device=values.device) for _ in range(self.size)]
        _collective(torch.distributed.all_gather, counts, torch.tensor([len(values)], device=values.device))
        longest = int(max(c.item() for c in counts))
        padded = values.new_zeros(longest, *values.shape[1:])
        padded[: len(values)] = values
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        _collective(torch.distributed.all_gather, parts, padded.contiguous())
        return torch.cat([part[: int(c.item())] for part, c in zip(parts, counts)])

    def agree(self, text: str, what: str) -> None:
        """A ``UserError`` on every rank unless all ranks hold the same ``text`` (compared by
        its SHA-256), e.g. their config: ``what`` names it in the message."""
        if not self.distributed:
            return
        digest = torch.tensor(list(hashlib.sha256(text.encode()).digest()), dtype=torch.uint8)
        digests = [torch.empty_like(digest) for _ in range(self.size)]
        _collective(torch.distributed.all_gather, digests, digest)
        others = [r for r, d in enumerate(digests) if not torch.equal(d, digests[0])]
        if others:
            raise UserError(f"the processes of this distributed run disagree on {what}: rank{'s' if len(others) > 1 else ''} "
                            f"{', '.join(map(str, others))} differ{'s' if len(others) == 1 else ''} from rank 0; start every "
                            "process with the same command and files")

    def settle(self, error: BaseException | None) -> None:
        """Where every rank has done a step that may fail on some of them (rank 0's claim of
        the run directory, say): re-raise ``error`` here, and on the ranks that succeeded
        raise a ``UserError`` that points to the failing rank's message."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        failed = torch.tensor([0 if error is None else 1 << self.rank], dtype=torch.long)
        _collective(torch.distributed.all_reduce, failed)
        if error is not None:
            raise error
        if failed.item():
            ranks = [r for r in range(self.size) if failed.item() >> r & 1]
            raise UserError(f"process{'es' if len(ranks) > 1 else ''} of rank {', '.join(map(str, ranks))} of this "
                            "distributed run stopped with the error printed above; every process stops")


SOLO = Group()


def _collective(operation, *args) -> None:
    try:
        operation(*args)
    except RuntimeError as error:  # DistBackendError, gloo's "Connection closed by peer", timeouts
        raise PeerLost(f"another process of this distributed run stopped or cannot be reached "
                       f"({str(error).splitlines()[0][:200]}); every process stops: continue the run with --resume") from None


def launched() -> bool:
    """Whether this process was started as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def backend(device: str) -> str:
    """``nccl`` where the run's processes use CUDA (``run.device`` cuda, or auto with GPUs), else ``gloo``."""
    uses_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return "nccl" if uses_cuda and torch.distributed.is_nccl_available() else "gloo"


def join(device: str = "auto", timeout: float = 600) -> Group:
    """The group of this process: ``SOLO`` when it runs alone; under torchrun, the default
    process group, joined here once (with the backend for ``device``; a collective waits
    ``timeout`` seconds for the others) and left when the process exits. With GPUs, the
    process takes GPU ``LOCAL_RANK``."""
    if not launched() and not torch.distributed.is_initialized():
        return SOLO
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_initialized():
        chosen = backend(device)
        if chosen == "nccl":
            torch.cuda.set_device(local_rank)
        try:
            torch.distributed.init_process_group(chosen, timeout=timedelta(seconds=timeout))
        except (RuntimeError, ValueError) as error:
            raise UserError(f"cannot join the distributed run ({str(error).splitlines()[0]}); start it with torchrun, "
                            "e.g. torchrun --nproc_per_node 2 -m distill run CONFIG") from None
        atexit.register(leave)
    return Group(torch.distributed.get_rank(), torch.distributed.get_world_size(), local_rank)


def leave() -> None:
    """Leave the default process group, if this process is in one."""
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def end_process(code: int) -> None:
    """End this process at once if it is one of a distributed run that finished its work
    (``code`` 0); else return. It flushes its output and calls ``os._exit(0)``, leaving the
    process group without tearing it down: every collective it took part in has completed,
    and the teardown of gloo's threads (``destroy_process_group``, or the interpreter's own at
    exit) aborted a finished process ("terminate called without an active exception",
    SIGABRT) in 2 of 116 two-process runs here (torch 2.13), so that torchrun failed a finished
    run. Its sockets close with the process, which is all the others see of it. A process
    that stops on an error exits the usual way: the others, stopping on the same error, print
    theirs before torchrun ends them."""
    if code == 0 and torch.distributed.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
