"""CPU time of a server process and its children, read from /proc: where an echo's CPU goes.

``python -m loadtest.bench`` drives the twin and the floor server at a fixed rate and divides
each process group's CPU time by the frames answered: the server process (the twin's gateway,
VTL, Kinesis and pollers, or the floor's WebSocket and @connections handler) and its worker
processes (the Lambda "containers", or the floor's one worker). Linux only; elsewhere the
figures are absent, never wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # clock ticks per second


def _ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` in clock ticks (None when it is gone or there is no /proc)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return int(fields[11]) + int(fields[12])


def process_cpu(pid: int) -> float | None:
    """CPU seconds of ``pid`` alone (not its children): one /proc read, for sampling often."""
    ticks = _ticks(pid)
    return None if ticks is None else ticks / _HZ


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


@dataclass(frozen=True)
class TreeCpu:
    """CPU seconds of one process and of all its descendants (per pid, so a child that exits
    between two samples is not counted as negative time)."""

    server: float
    children: dict[int, float]

    @classmethod
    def sample(cls, pid: int) -> TreeCpu | None:
        own = process_cpu(pid)
        if own is None:
            return None
        kids: dict[int, float] = {}
        todo = _children(pid)
        while todo:
            child = todo.pop()
            cpu = process_cpu(child)
            if cpu is not None:
                kids[child] = cpu
                todo += _children(child)
        return cls(own, kids)

    def since(self, before: TreeCpu) -> tuple[float, float]:
        """(server CPU s, children CPU s) spent between ``before`` and this sample."""
        kids = sum(t - before.children.get(pid, 0.0) for pid, t in self.children.items())
        return self.server - before.server, kids
