"""idempotent(...): a frame with an ``id`` runs once; duplicates get the stored replies again.

The replies are captured through the invocation's reply observers (no patched ``ctx.reply``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, B, envelope, event
from runtime_kit.roster_table import TABLE

from pipeline.runtime import ConnectionId, Envelope, HandlerContext, process_batch
from pipeline.runtime.container import reset
from pipeline.runtime.idempotency import FRAMES_DEDUPLICATED, idempotent


@pytest.fixture
def layer(ctx: HandlerContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ROSTER_TABLE_NAME", TABLE)
    reset()
    yield
    reset()


class Handler:
    """Replies twice to the sender (one error frame) and once to B; counts executions."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, record: Envelope, ctx: HandlerContext) -> None:
        self.runs += 1
        frame = record.body_object() or {}
        ctx.reply(record, {"action": "echo", "data": frame.get("data"), "run": self.runs})
        ctx.error(record, "invalid_request", "and an error frame")
        other = dataclasses.replace(record, connection_id=ConnectionId(B))
        ctx.reply(other, {"action": "aside"})  # to another connection: not the sender's reply


def batch(frame: dict[str, Any]) -> dict[str, Any]:
    return event((A, envelope("echo", A, frame)))


def test_a_duplicate_is_answered_with_the_stored_replies_not_run_again(
    atconn: AtConnections, ctx: HandlerContext, layer: None, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = Handler()
    frame = {"action": "echo", "data": 7, "id": "f-1"}
    for _ in range(3):
        assert process_batch(batch(frame), None, idempotent(handler), ctx=ctx) == {
            "batchItemFailures": []}
    assert handler.runs == 1
    first = [{"action": "echo", "data": 7, "run": 1},
             {"action": "error", "error": "invalid_request", "message": "and an error frame"}]
    assert atconn.received(A) == first * 3  # answered three times, in order
    assert atconn.received(B) == [{"action": "aside"}]  # side effects once
    assert FRAMES_DEDUPLICATED in capsys.readouterr().out


def test_the_same_id_with_another_frame_is_refused(
    atconn: AtConnections, ctx: HandlerContext, layer: None
) -> None:
    handler = Handler()
    process_batch(batch({"action": "echo", "data": 1, "id": 9}), None, idempotent(handler),
                  ctx=ctx)
    process_batch(batch({"action": "echo", "data": 2, "id": 9}), None, idempotent(handler),
                  ctx=ctx)
    assert handler.runs == 1
    refused = atconn.received(A)[-1]
    assert (refused["error"], refused["id"]) == ("invalid_request", "9")


def test_frames_without_an_id_run_every_time(
    atconn: AtConnections, ctx: HandlerContext, layer: None
) -> None:
    handler = Handler()
    for _ in range(2):
        process_batch(batch({"action": "echo", "data": 1}), None, idempotent(handler), ctx=ctx)
    assert handler.runs == 2 and len(atconn.received(A)) == 4
