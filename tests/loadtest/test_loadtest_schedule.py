from __future__ import annotations

import itertools
import math

import pytest

from loadtest.schedule import Timeline, ramp_delays


def test_total_frames_is_rate_times_duration() -> None:
    assert Timeline(rate=1000, duration=30, connections=50).total == 30_000
    assert Timeline(rate=3, duration=1.5, connections=2).total == 5  # 0, 1/3, 2/3, 1, 4/3


def test_due_times_are_a_fixed_evenly_spaced_timeline() -> None:
    t = Timeline(rate=200, duration=1, connections=7)
    dues = sorted(due for c in range(7) for _, due in t.frames_for(c))
    assert len(dues) == 200
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(dues)}
    assert gaps == {0.005}
    assert dues[0] == 0.0 and math.isclose(dues[-1], 0.995)


def test_connections_share_frames_round_robin_with_per_connection_seq() -> None:
    t = Timeline(rate=10, duration=1, connections=3)
    assert [t.count_for(c) for c in range(3)] == [4, 3, 3]
    assert list(t.frames_for(1)) == [(0, 0.1), (1, 0.4), (2, 0.7)]
    assert sum(t.count_for(c) for c in range(3)) == t.total


def test_more_connections_than_frames() -> None:
    t = Timeline(rate=2, duration=1, connections=5)
    assert [t.count_for(c) for c in range(5)] == [1, 1, 0, 0, 0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0, "duration": 1, "connections": 1},
        {"rate": float("inf"), "duration": 1, "connections": 1},
        {"rate": 1, "duration": -1, "connections": 1},
        {"rate": 1, "duration": 1, "connections": 0},
    ],
)
def test_invalid_timeline_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Timeline(**kwargs)  # type: ignore[arg-type]


def test_ramp_opens_connections_at_the_given_rate() -> None:
    assert ramp_delays(4, 2.0) == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError):
        ramp_delays(3, 0)
