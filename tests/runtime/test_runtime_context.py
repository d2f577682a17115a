"""Replies and fan-out: 410 pruning (once), 413 to the sender, failures reported."""

from __future__ import annotations

import json
from typing import Any

import pytest
from connections_stub import AtConnections
from kinesis_events import A, envelope, event
from runtime_fixtures import all_items, put_meta

from pipeline.runtime import DeliveryError, Envelope, HandlerContext, decode_record


def record_from(cid: str = A, data: Any = 1) -> Envelope:
    frame = {"action": "echo", "data": data}
    return decode_record(event((cid, envelope("echo", cid, frame)))["Records"][0])[0]


def test_410_prunes_every_item_of_the_connection_exactly_once(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_meta(ddb, A)
    ctx.roster.join(A, "lobby")
    put_meta(ddb, "other")
    atconn.gone.add(A)
    calls: list[str] = []
    remove = ctx.roster.remove_connection

    def counting_remove(cid: str) -> int:
        calls.append(cid)
        return remove(cid)

    monkeypatch.setattr(ctx.roster, "remove_connection", counting_remove)
    ctx.reply(record_from(), {"action": "echo"})
    ctx.fanout([A, "other"], {"action": "broadcast"})
    ctx.reply(record_from(), {"action": "echo"})
    assert calls == [A]
    assert all_items(ddb) == [("CONN#other", "META")]
    assert atconn.delivered_to() == ["other"]


def test_a_reply_too_large_becomes_a_payload_too_large_error_frame(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    ctx.reply(record_from(), {"action": "echo", "data": "x" * 200_000})
    (frame,) = atconn.received(A)
    assert frame["action"] == "error" and frame["error"] == "payload_too_large"
    assert isinstance(frame["message"], str) and frame["message"]


def test_a_reply_that_keeps_failing_raises_so_the_record_is_retried(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.broken.add(A)
    with pytest.raises(DeliveryError) as info:
        ctx.reply(record_from(), {"action": "echo"})
    assert info.value.failed == {A: "HTTP 500 InternalServerErrorException"}


def test_fanout_reports_each_outcome_and_raises_only_when_all_failed(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.gone.add("g")
    atconn.broken.add("b")
    atconn.throttle["t"] = 1
    report = ctx.fanout(["ok", "g", "b", "t"], {"action": "broadcast", "data": 1})
    assert (report.delivered, report.gone, list(report.failed)) == (2, 1, ["b"])
    assert sorted(atconn.delivered_to()) == ["ok", "t"]
    assert json.loads(atconn.posts[0][1]) == {"action": "broadcast", "data": 1}
    atconn.broken.add("b2")
    with pytest.raises(DeliveryError):
        ctx.fanout(["b", "b2"], {"action": "broadcast"})
    assert ctx.fanout([], {"action": "broadcast"}).attempted == 0
