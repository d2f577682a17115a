"""chat: a batch's consecutive joins and leaves share their roster writes, in stream order.

The calls are counted on moto's DynamoDB client (a botocore hook), and DynamoDB's partial
answers come from :class:`Unprocessed`, which hands every write to moto except the ones it
leaves unprocessed, as DynamoDB does when throttled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from consumer_loader import load_handler
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import envelope, event, seqs
from runtime_kit.roster_table import TABLE, all_items, put_meta

from pipeline.runtime import HandlerContext, Roster
from pipeline.runtime.roster import BATCH_WRITE_MAX

chat = load_handler("chat")
A, B, C, X = "AAAAaaaaaaaaaa=", "BBBBaaaaaaaaaa=", "CCCCaaaaaaaaaa=", "XXXXaaaaaaaaaa="


def rec(cid: str, frame: dict[str, Any]) -> tuple[str, bytes]:
    return cid, envelope(str(frame["action"]), cid, frame)


def join(cid: str, room: str = "lobby") -> tuple[str, bytes]:
    return rec(cid, {"action": "join", "room": room})


def leave(cid: str, room: str = "lobby") -> tuple[str, bytes]:
    return rec(cid, {"action": "leave", "room": room})


@pytest.fixture
def calls(ddb: Any) -> Iterator[list[str]]:
    """The DynamoDB operations the test's client sends to moto, in order (but the Scan of the
    OpenConnections gauge, made at most once a minute by whichever test comes first)."""
    seen: list[str] = []

    def count(model: Any, **_: Any) -> None:
        if model.name != "Scan":
            seen.append(model.name)

    ddb.meta.events.register("before-call.dynamodb", count)
    yield seen
    ddb.meta.events.unregister("before-call.dynamodb", count)


def test_a_batch_of_joins_makes_one_roster_call_per_25_items(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, calls: list[str]
) -> None:
    members = [f"M{i:03d}aaaaaaaaaa=" for i in range(100)]
    response = chat.handle(event(*(join(cid) for cid in members)), None, ctx)
    assert response == {"batchItemFailures": []}
    items = 2 * len(members)
    assert calls == ["BatchWriteItem"] * math.ceil(items / BATCH_WRITE_MAX)  # 8, not 100
    assert len(all_items(ddb)) == items
    assert sorted(ctx.roster.members("lobby")) == sorted(members)
    for cid in members:
        assert atconn.received(cid) == [{"action": "joined", "room": "lobby"}]


def test_a_send_ends_the_run_so_it_never_reaches_a_later_joiner(
    atconn: AtConnections, ctx: HandlerContext, calls: list[str]
) -> None:
    hello = {"action": "send", "room": "lobby", "text": "before C"}
    later = {"action": "send", "room": "lobby", "text": "after C"}
    response = chat.handle(event(join(A), join(B), rec(A, hello), join(C), rec(B, later)),
                           None, ctx)
    assert response == {"batchItemFailures": []}
    # A and B in one call, the room read for the send, then C's own call
    assert calls == ["BatchWriteItem", "Query", "BatchWriteItem"]
    assert atconn.received(C) == [{"action": "joined", "room": "lobby"},
                                  {"action": "message", "room": "lobby", "from": B,
                                   "text": "after C"}]
    assert [m.get("text") for m in atconn.received(B)] == [None, "before C"]
    assert [m.get("text") for m in atconn.received(A)] == [None, "after C"]


def test_join_then_leave_in_one_batch_leaves_the_member_out(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, calls: list[str]
) -> None:
    # The same keys twice in a BatchWriteItem are refused (ValidationException): the leave
    # starts a new call, after the join's, and both are applied in stream order.
    response = chat.handle(event(join(A), join(B), leave(A), join(C), join(A, "other"),
                                 leave(B), join(B)), None, ctx)
    assert response == {"batchItemFailures": []}
    assert calls == ["BatchWriteItem"] * 3  # [A, B], [A leaves, C, A other, B leaves], [B]
    assert sorted(ctx.roster.members("lobby")) == sorted([B, C])
    assert list(ctx.roster.members("other")) == [A]
    assert [m["action"] for m in atconn.received(A)] == ["joined", "left", "joined"]
    assert [m["action"] for m in atconn.received(B)] == ["joined", "left", "joined"]


class Unprocessed:
    """The real (moto) client, except that BatchWriteItem leaves the writes whose key names
    one of ``connections`` unprocessed every time, and refuses the ``refuse``-th request
    (1-based) with ``ValidationException``."""

    def __init__(self, ddb: Any, connections: set[str], refuse: int = 0) -> None:
        self._ddb = ddb
        self.connections = connections
        self.refuse = refuse
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ddb, name)

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        self.calls += 1
        if self.calls == self.refuse:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "no"}},
                              "BatchWriteItem")
        (table, requests), = RequestItems.items()
        left = [r for r in requests if any(cid in str(r) for cid in self.connections)]
        done = [r for r in requests if r not in left]
        if done:
            self._ddb.batch_write_item(RequestItems={table: done})
        return {"UnprocessedItems": {table: left} if left else {}}


def test_a_write_left_unprocessed_fails_its_record_and_its_connections_later_ones(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    ctx.roster_client = Roster(TABLE, client=Unprocessed(ddb, {X}))
    evt = event(join(A), join(X), join(B), leave(X), join(C),
                rec(X, {"action": "send", "room": "lobby", "text": "x"}))
    response = chat.handle(evt, None, ctx)
    # X's join failed (it and X's later records are retried, in order); A, B and C are done
    seq = seqs(evt)
    assert response == {"batchItemFailures": [{"itemIdentifier": s}
                                              for s in (seq[1], seq[3], seq[5])]}
    assert sorted(ctx.roster.members("lobby")) == sorted([A, B, C])
    assert atconn.received(X) == []
    for cid in (A, B, C):
        assert atconn.received(cid) == [{"action": "joined", "room": "lobby"}]


def test_a_refused_request_fails_exactly_the_records_of_its_chunk(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    roster = Unprocessed(ddb, set(), refuse=2)
    ctx.roster_client = Roster(TABLE, client=roster)
    members = [f"M{i:02d}aaaaaaaaaa=" for i in range(30)]  # 60 items: 25, 25 and 10
    evt = event(*(join(cid) for cid in members))
    response = chat.handle(evt, None, ctx)
    assert roster.calls == 3
    # the second request holds items 25-49: the second item of join 12, both of joins 13-24
    failed = range(12, 25)
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs(evt)[i]} for i in failed]}
    written = [cid for i, cid in enumerate(members) if i not in failed]
    assert sorted(ctx.roster.members("lobby")) == sorted(written)
    assert sorted(atconn.delivered_to()) == sorted(written)


def test_a_join_with_an_id_is_written_alone_so_a_duplicate_is_not_written_again(
    atconn: AtConnections, ctx: HandlerContext, calls: list[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.runtime.container import reset

    monkeypatch.setenv("ROSTER_TABLE_NAME", TABLE)
    reset()
    try:
        again = {"action": "join", "room": "lobby", "id": "j-1"}
        response = chat.handle(event(join(B), rec(A, again), leave(A), rec(A, again), join(C)),
                               None, ctx)
        assert response == {"batchItemFailures": []}
        # the duplicate is answered from its first execution, not joined again
        assert [m["action"] for m in atconn.received(A)] == ["joined", "left", "joined"]
        assert sorted(ctx.roster.members("lobby")) == sorted([B, C])
        assert calls.count("BatchWriteItem") == 4  # B, A's join, A's leave, C: no run of two
    finally:
        reset()


def disconnect(cid: str) -> tuple[str, bytes]:
    return cid, envelope("$disconnect", cid, "", event_type="DISCONNECT")


def test_a_batch_of_disconnects_reads_each_connection_and_deletes_in_shared_calls(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, calls: list[str]
) -> None:
    members = [f"M{i:02d}aaaaaaaaaa=" for i in range(20)]
    for cid in members:
        put_meta(ddb, cid)
    assert chat.handle(event(*(join(cid) for cid in members)), None, ctx) == {
        "batchItemFailures": []}
    calls.clear()
    evt = event(*(disconnect(cid) for cid in members))
    response = chat.handle(evt, None, ctx)
    assert response == {"batchItemFailures": []}
    # one Query per connection, then its META and both membership items: 60 deletes, 3 calls
    assert calls == ["Query"] * 20 + ["BatchWriteItem"] * 3
    assert all_items(ddb) == []
    # each disconnect still announces its room's "left" (the deltas put after the batch)
    deltas = ctx.memo[chat.DELTAS]
    assert [seq for seq, _, _ in deltas] == seqs(evt)
    assert all(b"disconnected" in data for _, _, data in deltas)


def test_a_disconnect_after_a_join_in_the_same_batch_removes_that_membership_too(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, calls: list[str]
) -> None:
    for cid in (A, B):
        put_meta(ddb, cid)
    calls.clear()
    hello = {"action": "send", "room": "lobby", "text": "who is here"}
    response = chat.handle(event(join(A), join(B), disconnect(A), rec(B, hello)), None, ctx)
    assert response == {"batchItemFailures": []}
    # the joins' call, then A's items read (its join written by then) and deleted, then the room
    assert calls == ["BatchWriteItem", "Query", "BatchWriteItem", "Query"]
    assert all_items(ddb) == sorted([(f"CONN#{B}", "META"), (f"CONN#{B}", "ROOM#lobby"),
                                     ("ROOM#lobby", f"CONN#{B}")])
    assert [m["action"] for m in atconn.received(A)] == ["joined"]  # not B's message


def test_a_disconnect_left_unprocessed_fails_only_its_record(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    for cid in (A, X, B):
        put_meta(ddb, cid)
        ctx.roster.join(cid, "lobby")
    ctx.roster_client = Roster(TABLE, client=Unprocessed(ddb, {X}))
    evt = event(disconnect(A), disconnect(X), disconnect(B))
    response = chat.handle(evt, None, ctx)
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs(evt)[1]}]}
    assert list(ctx.roster.members("lobby")) == [X]
    assert {pk for pk, _ in all_items(ddb)} == {f"CONN#{X}", "ROOM#lobby"}
