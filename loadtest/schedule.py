"""The open-loop timeline: when each frame *should* be sent, independent of the server.

Frame ``k`` (0-based, over all connections) is due at ``k / rate`` seconds after the start and
is sent by connection ``k % connections``. A sender that falls behind sends late frames at once
(it never skips and never waits for replies), and latency is measured from the due time, so
queueing delay shows up in the numbers instead of silently lowering the offered rate
(coordinated omission).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Timeline:
    """A fixed send schedule: ``rate`` frames/s in total over ``connections``, for ``duration`` s."""

    rate: float
    duration: float
    connections: int

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError("rate must be a positive finite number")
        if not (self.duration > 0 and math.isfinite(self.duration)):
            raise ValueError("duration must be a positive finite number")
        if self.connections < 1:
            raise ValueError("connections must be >= 1")

    @property
    def total(self) -> int:
        """Frames in the whole run (all connections)."""
        return math.ceil(self.duration * self.rate - 1e-9)

    def due(self, k: int) -> float:
        """Seconds after the start at which frame ``k`` is due."""
        return k / self.rate

    def connection_of(self, k: int) -> int:
        """Which connection sends frame ``k``."""
        return k % self.connections

    def count_for(self, connection: int) -> int:
        """How many frames ``connection`` sends in the run."""
        total = self.total
        return max(0, (total - connection + self.connections - 1) // self.connections)

    def frames_for(self, connection: int) -> Iterator[tuple[int, float]]:
        """``(seq, due)`` for each frame of ``connection``; ``seq`` counts from 0 per connection."""
        for seq in range(self.count_for(connection)):
            k = connection + seq * self.connections
            yield seq, self.due(k)


def ramp_delays(connections: int, ramp_per_s: float) -> list[float]:
    """Seconds after the start at which to open each connection (``ramp_per_s`` per second)."""
    if ramp_per_s <= 0:
        raise ValueError("ramp must be positive")
    return [i / ramp_per_s for i in range(connections)]
