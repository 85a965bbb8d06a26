"""A run directory that shows its progress while it is written: ``curves.png`` redrawn from
``log.csv`` as rows arrive, and, when asked, the same scalars and the run's pictures in
TensorBoard (``board.Board``).

Drawing the curves takes 0.5-0.7 s on a 2-core CPU (five panels; a log row of the default
digits run comes every 1.7 s), so a row redraws them only when ``CURVES_EVERY`` seconds have
passed since the last drawing (about 2% of a run's time); ``close`` draws the last rows.
Every method that ``run_experiment`` runs and that logs through ``RunDir.start_log`` and
``append_log`` gets both views, the kernel methods' included.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .board import Board
from .curves import plot_curves
from .rundir import LOG_FIELDS, RunDir

CURVES_EVERY = 30.0  # seconds between redraws of curves.png while a run logs
PICTURES = ("grid.png", "continual.png", "curves.png")  # the run's pictures that TensorBoard shows too


class MonitoredRun(RunDir):
    """A ``RunDir`` whose log is drawn to ``curves.png`` and, given ``tensorboard`` (a folder
    checked by ``board.board_folder``), written as TensorBoard events there. Call ``close``
    when the run ends, however it ends. In a distributed run only rank 0 has one (the other
    ranks get a ``rundir.FollowerRun``): one drawing, one event file."""

    def __init__(self, path: str | Path, tensorboard: str | Path | None = None) -> None:
        super().__init__(path)
        self.board_folder = None if tensorboard is None else Path(tensorboard)
        self.board: Board | None = None
        self.created = False  # whether the run got past its set-up (a run that fails in it leaves no trace)
        self.drawn_at = 0.0
        self.undrawn = False  # log rows not drawn yet

    def create(self, overwrite: bool = False) -> None:
        super().create(overwrite)
        self.created = True

    def start_log(self, keep_until: int = 0, fields: tuple[str, ...] = LOG_FIELDS) -> None:
        super().start_log(keep_until, fields)
        self.drawn_at, self.undrawn = time.monotonic(), True
        if self.board_folder is not None and self.board is None:
            self.board = Board(self.board_folder, purge_step=keep_until + 1)

    def append_log(self, row: dict[str, Any]) -> None:
        super().append_log(row)
        if self.board is not None:
            self.board.add_row(row)
        self.undrawn = True
        if time.monotonic() - self.drawn_at >= CURVES_EVERY:
            self.draw_curves()

    def draw_curves(self) -> None:
        """``curves.png`` from the rows of ``log.csv``."""
        plot_curves(self.read_log(), self.curves, title=str(self.path))
        self.drawn_at, self.undrawn = time.monotonic(), False

    def close(self) -> None:
        """Draw the rows not drawn yet; give TensorBoard the run's pictures and close it.
        Nothing for a run that did not get past its set-up."""
        if not self.created:
            return
        if self.undrawn:
            self.draw_curves()
        if self.board_folder is None:
            return
        board = self.board or Board(self.board_folder)  # a run without a log (continual) shows its pictures only
        rows = self.read_log()
        step = int(rows[-1]["iteration"]) if rows else 0
        for name in PICTURES:
            if (self.path / name).is_file():
                board.add_picture(Path(name).stem, self.path / name, step)
        board.close()
        self.board = None
