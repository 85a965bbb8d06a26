"""Continual learning with an episodic memory: task streams are trained with plain SGD,
EWC or GEM, whose memory holds real or distilled samples of every finished task."""

from .gem import project
from .learners import EWC, GEM, Single, TaskHead, fisher_diagonal, train_task
from .metrics import summary
from .run import run_continual

__all__ = ["EWC", "GEM", "Single", "TaskHead", "fisher_diagonal", "project", "run_continual", "summary", "train_task"]
