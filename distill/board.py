"""TensorBoard: a run's log rows as scalars and its pictures as images, through
``torch.utils.tensorboard.SummaryWriter`` (which needs the ``tensorboard`` package:
``pip install tensorboard``, or the ``tensorboard`` extra).

Every measurement of a log row (``curves.measurements``: the loss, the step sizes, the
accuracies, ...) is a scalar of that name at the row's iteration, so TensorBoard shows the
curves of ``curves.png``; the run's pictures (``grid.png``, ``continual.png``) are images at
the last iteration.

Only one process may write a run's events: when distributed runs come, only rank 0 opens a
``Board`` (``monitor.MonitoredRun`` is where an ``is_main_process()`` check goes, beside the
other rank-0 I/O).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .curves import measurements
from .errors import UserError
from .files import check_writable

FLUSH_SECONDS = 10  # how stale TensorBoard's view of a running run may be


def board_folder(folder: str | Path) -> Path:
    """``folder`` checked for TensorBoard's events: a folder (or a path where one can be
    made) that is writable, with the tensorboard package installed; else a ``UserError``."""
    folder = Path(folder)
    if importlib.util.find_spec("tensorboard") is None:
        raise UserError("TensorBoard logging needs the tensorboard package: pip install tensorboard")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"the TensorBoard folder {folder} is a file; name a folder")
    check_writable(folder)
    return folder


class Board:
    """The events of one run in ``folder``. ``purge_step``: a resumed run's first new
    iteration; TensorBoard hides the events an earlier writer left from it on."""

    def __init__(self, folder: str | Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # here: loads torch and tensorboard

        self.writer = SummaryWriter(str(folder), purge_step=purge_step, flush_secs=FLUSH_SECONDS)

    def add_row(self, row: dict, x: str = "iteration") -> None:
        """Every measurement of the log row ``row`` as a scalar at step ``row[x]``."""
        step = int(float(row[x]))
        for name, value in measurements(row, x).items():
            self.writer.add_scalar(name, value, step)

    def add_picture(self, tag: str, path: str | Path, step: int) -> None:
        """The PNG file ``path`` as the image ``tag`` at ``step``."""
        from matplotlib.image import imread

        self.writer.add_image(tag, imread(path)[..., :3], step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()
