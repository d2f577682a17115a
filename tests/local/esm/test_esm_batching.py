"""Batching by size, window and payload; lanes by partition key."""

from __future__ import annotations

from collections import Counter

from pipeline.local.esm.batching import Batcher, event_size, lane_of
from pipeline.local.esm.interfaces import StoredRecord


def rec(i: int, key: str = "k", size: int = 10) -> StoredRecord:
    return StoredRecord(f"{i:056d}", key, b"x" * size, 0.0)


def test_window_zero_is_ready_at_once_with_what_is_there() -> None:
    b = Batcher(batch_size=100, window_s=0.0)
    assert b.wait_time(0.0) is None and not b.ready(0.0)
    for i in range(3):
        b.add(rec(i), now=10.0)
    assert b.ready(10.0) and b.wait_time(10.0) == 0.0
    assert [r.sequence_number for r in b.take(10.0)] == [f"{i:056d}" for i in range(3)]
    assert len(b) == 0 and b.wait_time(10.0) is None


def test_window_waits_until_full_or_expired() -> None:
    b = Batcher(batch_size=3, window_s=2.0)
    b.add(rec(0), now=100.0)
    b.add(rec(1), now=101.0)
    assert not b.ready(101.5) and b.wait_time(101.5) == 0.5
    assert b.ready(102.0)
    b.add(rec(2), now=101.6)
    assert b.ready(101.6)  # full before the window ends


def test_take_respects_batch_size_and_restarts_the_window_for_the_rest() -> None:
    b = Batcher(batch_size=2, window_s=5.0)
    for i in range(5):
        b.add(rec(i), now=0.0)
    assert len(b.take(1.0)) == 2 and len(b.take(1.0)) == 2
    assert not b.ready(1.0) and b.wait_time(1.0) == 5.0
    assert len(b.take(6.0)) == 1


def test_take_keeps_the_invocation_payload_under_the_limit() -> None:
    b = Batcher(batch_size=100, window_s=0.0, max_payload_bytes=3 * event_size(rec(0, size=900)))
    for i in range(7):
        b.add(rec(i, size=900), now=0.0)
    assert [len(b.take(0.0)) for _ in range(3)] == [3, 3, 1]
    huge = Batcher(batch_size=10, window_s=0.0, max_payload_bytes=10)
    huge.add(rec(0, size=100), now=0.0)
    assert len(huge.take(0.0)) == 1  # a record larger than the limit still goes, alone


def test_lanes_are_stable_and_spread() -> None:
    assert lane_of("anything", 1) == 0
    lanes = [lane_of(f"conn-{i}", 4) for i in range(400)]
    assert lanes == [lane_of(f"conn-{i}", 4) for i in range(400)]
    assert set(Counter(lanes)) == {0, 1, 2, 3} and min(Counter(lanes).values()) > 60
