"""Partial batch responses: exact failed sequence numbers, per-key order, aggregation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from runtime_kit.kinesis_events import A, B, envelope, event, load, seqs

from pipeline.runtime import Envelope, HandlerContext, process_batch


class Recorder:
    """A record handler that records what it saw and fails on chosen bodies."""

    def __init__(self, fail_when: str | None = None) -> None:
        self.fail_when = fail_when
        self.seen: list[tuple[str, str, int | None]] = []

    def __call__(self, record: Envelope, ctx: HandlerContext) -> None:
        if self.fail_when is not None and self.fail_when in record.body:
            raise RuntimeError("boom")
        self.seen.append((record.connection_id, record.route_key, record.sub_sequence_number))


def run(evt: dict[str, Any], handler: Recorder, **kwargs: Any) -> list[str]:
    response = process_batch(evt, None, handler, ctx=HandlerContext(), **kwargs)
    return [str(item["itemIdentifier"]) for item in response["batchItemFailures"]]


def test_a_clean_batch_reports_no_failures_and_processes_in_order() -> None:
    handler = Recorder()
    assert run(load("kinesis_chat_batch"), handler) == []
    assert [(c, r) for c, r, _ in handler.seen] == [
        (A, "join"), (B, "join"), (A, "send"), (B, "send"), (A, "leave"), (B, "$disconnect")]


def test_after_a_failure_later_records_of_the_same_key_are_reported_not_processed() -> None:
    evt = load("kinesis_chat_batch")
    handler = Recorder(fail_when="hi from A")
    failed = run(evt, handler)
    s = seqs(evt)
    assert failed == [s[2], s[4]]  # A's send and A's later leave; nothing of B
    assert [(c, r) for c, r, _ in handler.seen] == [
        (A, "join"), (B, "join"), (B, "send"), (B, "$disconnect")]


def test_a_failing_sub_record_fails_its_aggregated_record_once_and_stops_it() -> None:
    evt = load("kinesis_aggregated_broadcast")
    handler = Recorder(fail_when='"n": 1')
    failed = run(evt, handler)
    assert failed == [seqs(evt)[0]]
    assert handler.seen == [("", "broadcast", 0), ("", "broadcast", None)]


def test_undecodable_records_are_reported_processed_by_default() -> None:
    evt = load("kinesis_undecodable")
    handler = Recorder()
    assert run(evt, handler) == []
    assert handler.seen == [(B, "echo", None)]


def test_undecodable_policy_fail_reports_them_and_keeps_key_order() -> None:
    evt = load("kinesis_undecodable")
    handler = Recorder()
    s = seqs(evt)
    assert run(evt, handler, undecodable="fail") == [s[0], s[1], s[2]]
    assert handler.seen == [(B, "echo", None)]


def test_an_entirely_failed_batch_is_reported_not_raised() -> None:
    evt = event((A, envelope("echo", A, "x1")), (B, envelope("echo", B, "x2")))
    assert run(evt, Recorder(fail_when="x")) == seqs(evt)


def test_undecodable_record_is_logged_in_full_at_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    evt = load("kinesis_undecodable")
    run({"Records": evt["Records"][:1]}, Recorder())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith('{"level"')]
    (logged,) = [line for line in lines if line["message"] == "undecodable record"]
    assert logged["level"] == "ERROR"
    assert logged["sequenceNumber"] == seqs(evt)[0]
    assert logged["record"] == evt["Records"][0]


def test_an_event_without_records_is_answered_not_crashed() -> None:
    assert process_batch({"nope": 1}, None, Recorder(), ctx=HandlerContext()) == {
        "batchItemFailures": []}
