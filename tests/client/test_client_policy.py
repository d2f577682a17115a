"""The client's pure decisions: backoff, token expiry, rooms, ack frames."""

from __future__ import annotations

import time

import jwt
import pytest

from pipeline.client.policy import ack_answer, backoff_delay, token_expired, track_rooms


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    highest = [backoff_delay(n, 0.25, 30.0, lambda low, high: high) for n in range(10)]
    assert highest == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff_delay(3, 0.25, 30.0, lambda low, high: low) == 0.0
    assert backoff_delay(10**6, 0.25, 30.0, lambda low, high: high) == 30.0  # no overflow


def test_token_expiry_is_read_from_exp_with_clock_skew() -> None:
    now = time.time()
    expired = jwt.encode({"exp": int(now) - 120}, "k" * 32, algorithm="HS256")
    fresh = jwt.encode({"exp": int(now) + 120}, "k" * 32, algorithm="HS256")
    barely = jwt.encode({"exp": int(now) - 5}, "k" * 32, algorithm="HS256")
    assert token_expired(expired, now) and not token_expired(fresh, now)
    assert not token_expired(barely, now)  # within the skew allowance
    assert not token_expired("opaque-token", now) and not token_expired("a.!!.c", now)


@pytest.mark.parametrize(("frames", "rooms"), [
    ([{"action": "join", "room": "a"}, {"action": "join", "room": "b"}], {"a", "b"}),
    ([{"action": "join", "room": "a"}, {"action": "leave", "room": "a"}], set()),
    ([{"action": "join", "room": 7}, {"action": "send", "room": "c"}], set()),
])
def test_rooms_are_tracked_from_join_and_leave(frames: list[dict[str, object]],
                                               rooms: set[str]) -> None:
    tracked: set[str] = set()
    for frame in frames:
        track_rooms(tracked, frame)
    assert tracked == rooms


def test_ack_answers_are_recognised() -> None:
    assert ack_answer({"action": "ack", "route": "send"}) == ("send", "ack", False)
    assert ack_answer({"action": "nack", "route": "send", "retryable": True}) == (
        "send", "nack", True)
    assert ack_answer({"action": "message"}) is None
    assert ack_answer({"action": "ack"}) is None
    assert ack_answer("text") is None
