"""The load test's ack accounting: order matching, retries, and the report."""

from __future__ import annotations

import random

from loadtest.acks import MAX_ATTEMPTS, MAX_BACKOFF_S, AckTracker, backoff_s
from loadtest.report import Report, format_summary


def test_answers_match_frames_in_send_order_and_measure_ingest() -> None:
    tracker = AckTracker()
    tracker.sent("a", 1_000.0)
    tracker.sent("b", 2_000.0)
    first = tracker.answer({"action": "ack"}, 5_000.0)
    assert first.pending is not None and first.pending.frame == "a"
    assert first.ingest_us == 4_000.0
    second = tracker.answer({"action": "nack", "error": "X", "retryable": False}, 6_000.0)
    assert second.pending is not None and second.pending.frame == "b"
    assert (second.error, second.retry, second.gave_up) == ("X", False, True)
    assert tracker.answer({"action": "ack"}, 7_000.0).pending is None  # nothing in flight
    assert tracker.missing == 0


def test_retryable_nacks_retry_a_bounded_number_of_times() -> None:
    tracker = AckTracker()
    nack = {"action": "nack", "error": "ProvisionedThroughputExceededException",
            "retryable": True}
    tracker.sent("f", 0.0)
    attempts = 1
    while True:
        answer = tracker.answer(nack, 1.0)
        if not answer.retry:
            break
        attempts += 1
        tracker.sent("f", 2.0, attempts)
    assert attempts == MAX_ATTEMPTS and answer.gave_up


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    values = [backoff_s(n, rng) for n in range(1, 30)]
    assert all(0.0 <= v <= MAX_BACKOFF_S for v in values)
    assert len(set(values)) == len(values)


def test_report_keeps_ingest_next_to_the_round_trip_through_json() -> None:
    report = Report()
    report.record_latency(0.0, 20_000.0, 19_000.0)
    report.record_ingest(3_000.0)
    report.totals.update({"acks": 1, "nacks": 2, "retries": 2})
    report.errors["nack:ProvisionedThroughputExceededException"] += 2
    again = Report.from_json(report.to_json())
    assert again.histograms["ingest"].get_total_count() == 1
    assert again.to_json()["totals"]["nacks"] == 2
    text = format_summary(again)
    assert "ingest (1st send -> ack)" in text and "1 acks  2 nacks  2 retries" in text
