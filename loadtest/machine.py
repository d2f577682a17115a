"""The machine a figure was measured on: printed next to every benchmark and load-test result.

Machines differ 2-4x in speed (and a shared box more), so no figure is shown without it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (``Intel(R) Xeon(R) Processor @ 2.80GHz``), else the
    platform's processor name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """Cores, CPU model, Python, platform and the 1-minute load average (a busy box is slower)."""
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        load = "?"
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load": load,
    }


def describe(info: dict[str, str]) -> str:
    """One line: ``2 cores, Intel(R) Xeon(R) Processor @ 2.80GHz, Python 3.11.7, load 1.2``."""
    return (f"{info.get('cores', '?')} cores, {info.get('cpu', '?')}, Python "
            f"{info.get('python', '?')}, load {info.get('load', '?')}")
