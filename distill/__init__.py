"""distill: dataset distillation in PyTorch."""

from .config import Config, load_config
from .evaluate import evaluate
from .experiment import run_experiment
from .synthetic import DistilledData

__all__ = ["Config", "DistilledData", "evaluate", "load_config", "run_experiment"]
__version__ = "0.1.0"
