"""Pipelined replies: concurrent across connections, in order per connection, and a failed post
fails its record and every later record of the same partition key."""

from __future__ import annotations

from typing import Any

from connections_stub import AtConnections
from kinesis_events import envelope, event, seqs

from pipeline.runtime import Envelope, HandlerContext, parse_envelope, process_batch

C = [f"C{i:02d}aaaaaaaaaaa=" for i in range(6)]


def echo(record: Envelope, ctx: HandlerContext) -> None:
    ctx.reply(record, {"action": "echo", "data": (record.body_object() or {}).get("data")})


def batch(per_connection: int, conns: list[str]) -> dict[str, Any]:
    # interleaved like a shard: c0#0, c1#0, ..., c0#1, c1#1, ...
    return event(*[(cid, envelope("echo", cid, {"action": "echo", "data": n}))
                   for n in range(per_connection) for cid in conns])


def failures(evt: dict[str, Any], ctx: HandlerContext) -> list[str]:
    response = process_batch(evt, None, echo, ctx=ctx, pipelined=True)
    return [str(item["itemIdentifier"]) for item in response["batchItemFailures"]]


def test_replies_go_out_concurrently_and_in_order_per_connection(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.delay_s = 0.02  # a slow endpoint: sequential posts would never overlap
    assert failures(batch(4, C), ctx) == []
    for cid in C:
        assert [m["data"] for m in atconn.received(cid)] == [0, 1, 2, 3]
    assert atconn.max_in_flight >= 3
    assert len(atconn.posts) == 4 * len(C)


def test_a_failed_reply_fails_its_record_and_the_later_ones_of_its_key(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    evt = batch(3, C[:3])
    atconn.broken.add(C[1])
    s = seqs(evt)
    # C1's records are at indexes 1, 4, 7: the first fails for good, the later two are not sent
    assert failures(evt, ctx) == [s[1], s[4], s[7]]
    assert atconn.attempts[C[1]] == 4  # FAST_RETRY: bounded attempts of the first reply only
    assert [m["data"] for m in atconn.received(C[0])] == [0, 1, 2]
    assert [m["data"] for m in atconn.received(C[2])] == [0, 1, 2]


def test_a_too_large_reply_is_followed_by_an_error_frame_in_order(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    big = "x" * (130 * 1024)
    evt = event((C[0], envelope("echo", C[0], {"action": "echo", "data": big})),
                (C[0], envelope("echo", C[0], {"action": "echo", "data": 2})))
    assert failures(evt, ctx) == []
    got = atconn.received(C[0])
    assert [m.get("error") or m["data"] for m in got] == ["payload_too_large", 2]


def test_gone_connections_are_pruned_on_the_invocation_thread(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.gone.add(C[0])
    assert failures(batch(2, C[:2]), ctx) == []  # gone is not a failure: nothing to retry
    assert atconn.attempts[C[0]] == 2
    assert [m["data"] for m in atconn.received(C[1])] == [0, 1]


def test_without_pipelining_reply_returns_the_final_result(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    record = parse_envelope(envelope("echo", C[0], {"action": "echo"}), sequence_number="1",
                            partition_key=C[0], approximate_arrival_timestamp=1700000000.2)
    assert ctx.reply(record, {"action": "echo"}).attempts == 1
    assert atconn.received(C[0]) == [{"action": "echo"}]


def room_send(record: Envelope, ctx: HandlerContext) -> None:
    """C0..C3 are a room: each record goes to the other three (chat's send, simplified)."""
    frame = record.body_object() or {}
    others = [c for c in C[:4] if c != record.connection_id]
    ctx.fanout(others, {"from": record.connection_id, "n": frame.get("data")}, record)


def fanout_failures(evt: dict[str, Any], ctx: HandlerContext) -> list[str]:
    response = process_batch(evt, None, room_send, ctx=ctx, pipelined=True)
    return [str(item["itemIdentifier"]) for item in response["batchItemFailures"]]


def test_fanouts_go_out_concurrently_in_stream_order_per_recipient(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.delay_s = 0.02
    assert fanout_failures(batch(3, C[:4]), ctx) == []
    for cid in C[:4]:  # each member: every other member's 0, 1, 2, in the batch's order
        got = [(m["from"], m["n"]) for m in atconn.received(cid)]
        assert got == [(s, n) for n in range(3) for s in C[:4] if s != cid]
    assert atconn.max_in_flight >= 3
    assert len(atconn.posts) == 3 * 4 * 3


def test_a_failing_recipient_is_logged_and_only_an_all_failed_fanout_fails_its_record(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.broken.add(C[1])
    evt = batch(2, C[:4])
    assert fanout_failures(evt, ctx) == []  # C1 broken: the others still get everything
    assert [(m["from"], m["n"]) for m in atconn.received(C[0])] == [
        (s, n) for n in range(2) for s in C[1:4]]
    atconn.broken.update(C[:4])
    s = seqs(evt)
    assert fanout_failures(evt, ctx) == s  # every post of every record failed


def test_a_too_large_fanout_tells_the_sender(atconn: AtConnections, ctx: HandlerContext) -> None:
    atconn.too_large.update(C[1:4])
    evt = event((C[0], envelope("send", C[0], {"action": "send", "data": 1})))
    assert fanout_failures(evt, ctx) == []
    assert [m["error"] for m in atconn.received(C[0])] == ["payload_too_large"]
    assert all(atconn.received(c) == [] for c in C[1:4])
