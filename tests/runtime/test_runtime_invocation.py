"""The one reply path: concurrent across connections, in order per connection, a failed post
fails its record and every later record of the same partition key; and the invocation's seams
(an explicit deadline, reply observers, undo on a failed fan-out, the settled fan-out report)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import envelope, event, seqs

from pipeline.runtime import (
    Envelope,
    FanoutReport,
    HandlerContext,
    PipelineRuntimeError,
    parse_envelope,
    process_batch,
)

C = [f"C{i:02d}aaaaaaaaaaa=" for i in range(6)]


def echo(record: Envelope, ctx: HandlerContext) -> None:
    ctx.reply(record, {"action": "echo", "data": (record.body_object() or {}).get("data")})


def batch(per_connection: int, conns: list[str]) -> dict[str, Any]:
    # interleaved like a shard: c0#0, c1#0, ..., c0#1, c1#1, ...
    return event(*[(cid, envelope("echo", cid, {"action": "echo", "data": n}))
                   for n in range(per_connection) for cid in conns])


def failures(evt: dict[str, Any], ctx: HandlerContext) -> list[str]:
    response = process_batch(evt, None, echo, ctx=ctx)
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
    # A 410 ends the connection (ids are never reused): its second reply is not sent.
    assert atconn.attempts[C[0]] == 1
    assert [m["data"] for m in atconn.received(C[1])] == [0, 1]


def test_posting_outside_an_invocation_is_refused_clearly(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    record = parse_envelope(envelope("echo", C[0], {"action": "echo"}), sequence_number="1",
                            partition_key=C[0], approximate_arrival_timestamp=1700000000.2)
    with pytest.raises(PipelineRuntimeError, match="process_batch"):
        ctx.reply(record, {"action": "echo"})
    assert failures(event((C[0], envelope("echo", C[0], {"action": "echo"}))), ctx) == []
    with pytest.raises(PipelineRuntimeError, match="settled"):
        ctx.reply(record, {"action": "echo"})  # after its batch: nobody would send it
    assert atconn.received(C[0]) == [{"action": "echo", "data": None}]


def room_send(record: Envelope, ctx: HandlerContext) -> None:
    """C0..C3 are a room: each record goes to the other three (chat's send, simplified)."""
    frame = record.body_object() or {}
    others = [c for c in C[:4] if c != record.connection_id]
    ctx.fanout(others, {"from": record.connection_id, "n": frame.get("data")}, record)


def fanout_failures(evt: dict[str, Any], ctx: HandlerContext) -> list[str]:
    response = process_batch(evt, None, room_send, ctx=ctx)
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


# --- the invocation's seams ---------------------------------------------------------------------

def one(cid: str, data: Any = 1) -> Envelope:
    return parse_envelope(envelope("echo", cid, {"action": "echo", "data": data}),
                          sequence_number="1", partition_key=cid,
                          approximate_arrival_timestamp=1700000000.2)


def test_the_deadline_given_to_the_invocation_reaches_every_post(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    invocation = ctx.begin(deadline=time.monotonic() - 1)  # already past
    invocation.charge_to("r0")
    ctx.reply(one(C[0]), {"action": "echo"})
    invocation.charge_to("r1")
    report = ctx.fanout([C[1], C[2]], {"action": "broadcast"}, one(C[3]))
    failed = invocation.settle()
    assert [(tag, err.failed) for tag, err in failed] == [
        ("r0", {C[0]: "HTTP 0 DeadlineExceeded"}),
        ("r1", {C[1]: "HTTP 0 DeadlineExceeded", C[2]: "HTTP 0 DeadlineExceeded"})]
    assert report.settled and report.failed and report.delivered == 0
    assert sum(atconn.attempts.values()) == 0  # nothing was sent past the deadline
    later = ctx.begin(deadline=time.monotonic() + 60)  # a new invocation, its own deadline
    ctx.reply(one(C[0]), {"action": "echo"})
    assert later.settle() == [] and atconn.delivered_to() == [C[0]]


def test_process_batch_gives_posts_the_lambda_contexts_deadline(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    """1.5 s left: posts stop retrying after ~0.5 s (1 s margin) and the record fails, instead of
    retrying for the policy's ~50 s and running the invocation into its timeout."""

    class LambdaContext:
        aws_request_id = "req-deadline"

        def get_remaining_time_in_millis(self) -> int:
            return 1500

    from pipeline.runtime import RetryPolicy

    ctx.connections.retry = RetryPolicy(max_attempts=50, base_s=1.0, cap_s=1.0)
    atconn.broken.add(C[0])
    evt = batch(1, C[:2])
    started = time.monotonic()
    response = process_batch(evt, LambdaContext(), echo, ctx=ctx)
    assert time.monotonic() - started < 2.0
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs(evt)[0]}]}
    assert 1 <= atconn.attempts[C[0]] < 50 and atconn.delivered_to() == [C[1]]
    deadline = ctx.invocation.deadline
    assert deadline is not None and started < deadline < started + 1.0


def test_reply_observers_see_the_replies_queued_while_registered(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def observed(record: Envelope, ctx: HandlerContext) -> None:
        with ctx.observe_replies(lambda to, payload: seen.append((to.connection_id,
                                                                  dict(payload)))):
            ctx.reply(record, {"action": "echo", "n": 1})
            ctx.error(record, "invalid_request", "no")
            ctx.fanout([C[5]], {"action": "broadcast"}, record)  # not a reply
        ctx.reply(record, {"action": "echo", "n": 2})  # after the with: not observed

    assert process_batch(event((C[0], envelope("echo", C[0], {}))), None, observed,
                         ctx=ctx) == {"batchItemFailures": []}
    assert seen == [(C[0], {"action": "echo", "n": 1}),
                    (C[0], {"action": "error", "error": "invalid_request", "message": "no"})]
    assert [m.get("n", m.get("error")) for m in atconn.received(C[0])] == [
        1, "invalid_request", 2]  # every reply still sent, in order


def test_undo_runs_only_for_a_record_whose_fanout_failed(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    undone: list[str] = []

    def send(record: Envelope, ctx: HandlerContext) -> None:
        ctx.on_fanout_failure(lambda: undone.append(record.connection_id))
        to = [C[4]] if record.connection_id == C[0] else [C[5]]
        ctx.fanout(to, {"from": record.connection_id}, record)

    atconn.broken.add(C[4])  # C0's only recipient: its fan-out fails, C1's does not
    evt = event((C[0], envelope("send", C[0], {})), (C[1], envelope("send", C[1], {})))
    response = process_batch(evt, None, send, ctx=ctx)
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs(evt)[0]}]}
    assert undone == [C[0]]


def test_the_fanout_report_is_filled_in_when_the_batch_settles(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    reports: list[tuple[FanoutReport, int, bool]] = []

    def send(record: Envelope, ctx: HandlerContext) -> None:
        report = ctx.fanout(["ok", "g", "b", "t", "ok"], {"action": "broadcast"}, record)
        reports.append((report, report.delivered, report.settled))

    atconn.gone.add("g")
    atconn.broken.add("b")
    atconn.throttle["t"] = 1
    process_batch(event((C[0], envelope("send", C[0], {}))), None, send, ctx=ctx)
    ((report, delivered_then, settled_then),) = reports
    assert (report.queued, delivered_then, settled_then) == (4, 0, False)  # once each
    assert (report.settled, report.delivered, report.gone, list(report.failed)) == (
        True, 2, 1, ["b"])
    assert report.attempted == report.queued


def test_a_reply_no_pool_thread_has_started_is_sent_by_the_waiting_invocation(
    atconn: AtConnections, ctx: HandlerContext, connections: Any
) -> None:
    """Every reply-lane thread is busy elsewhere: the batch's replies are taken back from the
    pool's queue and posted by the invocation itself, instead of waiting for a thread."""
    import threading

    from pipeline.runtime.connections import REPLY_WORKERS

    release = threading.Event()
    started = threading.Barrier(REPLY_WORKERS + 1, timeout=10)

    def occupy() -> None:
        started.wait()
        release.wait(30)

    blockers = [connections.submit(occupy, priority=True) for _ in range(REPLY_WORKERS)]
    started.wait()  # every reply thread is inside occupy()
    try:
        t0 = time.monotonic()
        assert failures(batch(2, C[:3]), ctx) == []
        assert time.monotonic() - t0 < 10  # not after the blockers' 30 s
        for cid in C[:3]:
            assert [m["data"] for m in atconn.received(cid)] == [0, 1]
        assert not any(b.done() for b in blockers)
    finally:
        release.set()
    for b in blockers:
        b.result(timeout=10)


def test_a_batch_to_many_connections_runs_at_most_a_drain_task_per_lane_thread(
    atconn: AtConnections, ctx: HandlerContext, connections: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each drain task takes the next waiting connection until none is left: a batch to
    three times as many connections as the reply lane has threads (queued well within one
    post's round trip) submits at most one task per thread, not one per connection, and
    every connection still gets its replies in order."""
    from pipeline.runtime.connections import REPLY_WORKERS

    submitted: list[bool] = []
    submit = connections.submit

    def counted(fn: Any, *, priority: bool = False) -> Any:
        submitted.append(priority)
        return submit(fn, priority=priority)

    monkeypatch.setattr(connections, "submit", counted)
    many = [f"M{i:03d}aaaaaaaaaa=" for i in range(3 * REPLY_WORKERS)]
    atconn.delay_s = 0.05
    assert failures(batch(2, many), ctx) == []
    assert 1 <= len(submitted) <= REPLY_WORKERS and all(submitted)
    for cid in many:
        assert [m["data"] for m in atconn.received(cid)] == [0, 1]


def test_replies_and_fanouts_to_one_connection_keep_their_order_across_the_lanes(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    """A connection's posts alternate between the reply lane and the fan-out lane: it is
    handed from one lane's drain to the other's and still gets them in the queued order."""
    def talk(record: Envelope, ctx: HandlerContext) -> None:
        n = (record.body_object() or {}).get("data")
        ctx.reply(record, {"kind": "reply", "n": n})
        others = [c for c in C[:3] if c != record.connection_id]
        ctx.fanout(others, {"kind": "fanout", "from": record.connection_id, "n": n}, record)

    atconn.delay_s = 0.002
    evt = batch(3, C[:3])
    assert process_batch(evt, None, talk, ctx=ctx) == {"batchItemFailures": []}
    for cid in C[:3]:
        expected = []
        for n in range(3):
            for sender in C[:3]:
                if sender == cid:
                    expected.append(("reply", cid, n))
                else:
                    expected.append(("fanout", sender, n))
        got = [(m["kind"], m.get("from", cid), m["n"]) for m in atconn.received(cid)]
        assert got == expected
