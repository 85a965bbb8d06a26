"""Continual learning with an episodic memory: task streams are trained with plain SGD,
EWC or GEM, whose memory holds real or distilled samples of every finished task. The
continual run directory (``method: continual``) is ``distill.methods.continual``."""

from .gem import project
from .learners import EWC, GEM, Single, TaskHead, fisher_diagonal, train_task
from .metrics import summary

__all__ = ["EWC", "GEM", "Single", "TaskHead", "fisher_diagonal", "project", "summary", "train_task"]
