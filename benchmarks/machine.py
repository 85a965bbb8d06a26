"""What a benchmark report says about the machine it ran on (shared by the benchmark scripts,
which find this module beside them)."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (elsewhere: ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def machine_info(**extra) -> dict:
    """Date, platform, CPU, core count, load at start, Python and torch versions, and ``extra``."""
    import torch

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        **extra,
    }
