"""Replies and fan-out: 410 pruning (once), 413 to the sender, failures reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, envelope, event
from runtime_kit.roster_table import all_items, put_meta

from pipeline.runtime import (
    DeliveryError,
    Envelope,
    FanoutReport,
    HandlerContext,
    decode_record,
    process_batch,
)


def record_from(cid: str = A, data: Any = 1) -> Envelope:
    frame = {"action": "echo", "data": data}
    return decode_record(event((cid, envelope("echo", cid, frame)))["Records"][0])[0]


def run(ctx: HandlerContext, handler: Callable[[Envelope, HandlerContext], None]) -> list[str]:
    """One batch of one echo record from A through ``handler``: the failed sequence numbers."""
    response = process_batch(event((A, envelope("echo", A, {"action": "echo"}))), None,
                             handler, ctx=ctx)
    return [str(item["itemIdentifier"]) for item in response["batchItemFailures"]]


def test_410_prunes_every_item_of_the_connection_exactly_once(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_meta(ddb, A)
    ctx.roster.join(A, "lobby")
    put_meta(ddb, "other")
    atconn.gone.add(A)
    calls: list[str] = []
    remove = ctx.roster.remove_connection_rooms

    def counting_remove(cid: str) -> Any:
        calls.append(cid)
        return remove(cid)

    def handler(record: Envelope, ctx: HandlerContext) -> None:
        ctx.reply(record, {"action": "echo"})
        ctx.fanout([A, "other"], {"action": "broadcast"})
        ctx.reply(record, {"action": "echo"})

    monkeypatch.setattr(ctx.roster, "remove_connection_rooms", counting_remove)
    assert run(ctx, handler) == []
    assert run(ctx, handler) == []  # a later invocation of the container: not pruned again
    assert calls == [A]
    assert all_items(ddb) == [("CONN#other", "META")]
    assert atconn.delivered_to() == ["other", "other"]
    assert atconn.attempts[A] == 2  # one post per batch: none after its 410 in the batch


def test_a_reply_too_large_becomes_a_payload_too_large_error_frame(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    assert run(ctx, lambda r, c: c.reply(r, {"action": "echo", "data": "x" * 200_000})) == []
    (frame,) = atconn.received(A)
    assert frame["action"] == "error" and frame["error"] == "payload_too_large"
    assert isinstance(frame["message"], str) and frame["message"]


def test_a_reply_that_keeps_failing_fails_its_record_so_it_is_retried(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.broken.add(A)
    invocation = ctx.begin()
    invocation.charge_to("the record")
    ctx.reply(record_from(), {"action": "echo"})
    ((tag, error),) = invocation.settle()
    assert tag == "the record"
    assert isinstance(error, DeliveryError)
    assert error.failed == {A: "HTTP 500 InternalServerErrorException"}
    assert len(run(ctx, lambda r, c: c.reply(r, {"action": "echo"}))) == 1


def test_fanout_reports_each_outcome_and_fails_its_record_only_when_all_failed(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.gone.add("g")
    atconn.broken.add("b")
    atconn.throttle["t"] = 1
    reports: list[FanoutReport] = []
    assert run(ctx, lambda r, c: reports.append(
        c.fanout(["ok", "g", "b", "t"], {"action": "broadcast", "data": 1}))) == []
    (report,) = reports
    assert (report.delivered, report.gone, list(report.failed)) == (2, 1, ["b"])
    assert sorted(atconn.delivered_to()) == ["ok", "t"]
    assert json.loads(atconn.posts[0][1]) == {"action": "broadcast", "data": 1}
    atconn.broken.add("b2")
    assert len(run(ctx, lambda r, c: reports.append(
        c.fanout(["b", "b2"], {"action": "broadcast"})))) == 1
    assert run(ctx, lambda r, c: reports.append(c.fanout([], {"action": "broadcast"}))) == []
    assert reports[-1].attempted == 0 and reports[-1].settled
