"""A clock a test sets (``clock.now += 301`` expires an iterator at once): no sleeps, tests move
time. Importable from every test as ``from clocks import Clock`` (pytest's pythonpath)."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
