"""chat: join/leave/send per the protocol table, validation, and $disconnect clean-up."""

from __future__ import annotations

from typing import Any

import pytest
from consumer_loader import load_handler
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, B, envelope, event, load
from runtime_kit.roster_table import all_items, put_meta
from stream_kit import pump

from pipeline.runtime import HandlerContext, process_batch
from pipeline.runtime.fanout import FanoutShape

chat = load_handler("chat")
C = "L0SOBcOFvHcCJkQ="


def send(ctx: HandlerContext, *frames: tuple[str, dict[str, Any] | str]) -> dict[str, Any]:
    items = []
    for cid, frame in frames:
        route = frame.get("action", "?") if isinstance(frame, dict) else "send"
        items.append((cid, envelope(str(route), cid, frame)))
    return dict(chat.handle(event(*items), None, ctx))


def test_the_fixture_conversation(atconn: AtConnections, ctx: HandlerContext, ddb: Any) -> None:
    put_meta(ddb, A)
    put_meta(ddb, B)
    response = chat.handle(load("kinesis_chat_batch"), None, ctx)
    assert response == {"batchItemFailures": []}
    # Presence is not on the chat path: the batch posts replies and messages only, and puts
    # one presence delta per join/leave/disconnect on the stream (in one call, after the batch).
    assert atconn.received(A) == [
        {"action": "joined", "room": "lobby"},
        {"action": "message", "room": "lobby", "from": B, "text": "hi from B"},
        {"action": "left", "room": "lobby"},
    ]
    assert atconn.received(B) == [
        {"action": "joined", "room": "lobby"},
        {"action": "message", "room": "lobby", "from": A, "text": "hi from A"},
    ]
    before = len(atconn.posts)
    assert pump(ctx) == 4  # A joined, B joined, A left, B disconnected: one window
    assert len(atconn.posts) == before  # and nobody is left in the room to tell
    assert all_items(ddb) == [(f"CONN#{A}", "META")]  # A left; B disconnected: all gone


def test_send_reaches_every_other_member_and_never_the_sender(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    for cid in (A, B, C):
        ctx.roster.join(cid, "room:1")
    ctx.roster.join("outsider", "room:2")
    send(ctx, (A, {"action": "send", "room": "room:1", "text": "x" * 4000}))
    assert sorted(atconn.delivered_to()) == sorted([B, C])
    assert atconn.received(B)[0] == {"action": "message", "room": "room:1", "from": A,
                                     "text": "x" * 4000}


@pytest.mark.parametrize("frame", [
    {"action": "join"},
    {"action": "join", "room": ""},
    {"action": "join", "room": "r" * 65},
    {"action": "leave", "room": "bad room"},
    {"action": "join", "room": 7},
    {"action": "send", "text": "hi"},
    {"action": "send", "room": "lobby", "text": "x" * 4001},
    {"action": "send", "room": "lobby", "text": {"no": 1}},
    {"action": "send", "room": "lobby"},
])
def test_bad_input_gets_invalid_request_and_changes_nothing(
    frame: dict[str, Any], atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    ctx.roster.join(A, "lobby")
    ctx.roster.join(B, "lobby")
    before = all_items(ddb)
    assert send(ctx, (A, frame)) == {"batchItemFailures": []}
    (reply,) = atconn.received(A)
    assert reply["action"] == "error" and reply["error"] == "invalid_request"
    assert isinstance(reply["message"], str) and reply["message"]
    assert atconn.received(B) == [] and all_items(ddb) == before


def test_sending_to_a_room_one_is_not_in_is_refused(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    ctx.roster.join(B, "lobby")
    send(ctx, (A, {"action": "send", "room": "lobby", "text": "let me in"}))
    assert [r["error"] for r in atconn.received(A)] == ["not_a_member"]
    assert atconn.received(B) == []


def test_gone_members_are_pruned_while_the_others_get_the_message(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    for cid in (A, B, C):
        put_meta(ddb, cid)
        ctx.roster.join(cid, "lobby")
    atconn.gone.add(C)
    send(ctx, (A, {"action": "send", "room": "lobby", "text": "hi"}))
    assert [m["text"] for m in atconn.received(B) if m["action"] == "message"] == ["hi"]
    assert atconn.received(A) == []  # the prune posts nothing itself ...
    pump(ctx)  # ... its presence delta, like any leave's, goes through the presence consumer
    gone = {"action": "presence", "room": "lobby", "joined": [],
            "left": [{"connectionId": C, "reason": "gone"}]}
    assert atconn.received(A) == [gone]  # the 410 prune told the remaining members
    assert atconn.received(B)[-1] == gone and C not in atconn.delivered_to()
    assert sorted(ctx.roster.members("lobby")) == sorted([A, B])
    assert not any(C in pk or C in sk for pk, sk in all_items(ddb))


def test_a_sender_with_no_meta_item_is_served_and_still_cleaned_up(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    """A connection whose $connect roster write failed (AWS may connect it anyway; docs/fidelity.md
    "Unverified on AWS") has no META item. It can join and send like any other, every item it
    makes carries a TTL, and the first 410 to it removes all of them."""
    put_meta(ddb, A)
    send(ctx, (C, {"action": "join", "room": "lobby"}), (A, {"action": "join", "room": "lobby"}))
    assert [m for m in atconn.received(C) if m["action"] != "presence"] == [
        {"action": "joined", "room": "lobby"}]
    send(ctx, (C, {"action": "send", "room": "lobby", "text": "from C"}))
    assert atconn.received(A)[-1] == {"action": "message", "room": "lobby", "from": C,
                                      "text": "from C"}
    items = ddb.scan(TableName=ctx.roster.table_name)["Items"]
    of_c = [i for i in items if C in i["pk"]["S"] or C in i["sk"]["S"]]
    assert len(of_c) == 2 and all("expiresAt" in i for i in of_c)  # both membership items
    atconn.gone.add(C)
    send(ctx, (A, {"action": "send", "room": "lobby", "text": "to C"}))
    assert not any(C in pk or C in sk for pk, sk in all_items(ddb))
    assert all_items(ddb) == sorted([(f"CONN#{A}", "META"), (f"CONN#{A}", "ROOM#lobby"),
                                     ("ROOM#lobby", f"CONN#{A}")])


def test_join_and_leave_are_idempotent(atconn: AtConnections, ctx: HandlerContext) -> None:
    send(ctx, (A, {"action": "join", "room": "r"}), (A, {"action": "join", "room": "r"}),
         (A, {"action": "leave", "room": "r"}), (A, {"action": "leave", "room": "r"}))
    assert [r["action"] for r in atconn.received(A)] == ["joined", "joined", "left", "left"]
    assert list(ctx.roster.members("r")) == []


def test_a_batch_reads_each_room_once_and_sees_its_own_joins_and_leaves(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    calls: list[str] = []
    ddb.meta.events.register("before-call.dynamodb.*",
                             lambda model, **_: calls.append(model.name))
    for cid in (A, B):
        ctx.roster.join(cid, "lobby")
    calls.clear()
    hello = {"action": "send", "room": "lobby", "text": "1"}
    send(ctx, (A, hello), (B, hello), (C, {"action": "join", "room": "lobby"}),
         (A, {**hello, "text": "2"}), (B, {"action": "leave", "room": "lobby"}),
         (A, {**hello, "text": "3"}), (B, {**hello, "text": "4"}))
    assert calls.count("Query") == 1 and "GetItem" not in calls

    def chat(cid: str) -> list[dict[str, Any]]:
        return [m for m in atconn.received(cid) if m["action"] != "presence"]

    def presence(cid: str) -> list[tuple[str, str]]:
        return [(k, member["connectionId"]) for m in atconn.received(cid)
                if m["action"] == "presence" for k in ("joined", "left") for member in m[k]]

    assert [m.get("text") for m in chat(C)] == [None, "2", "3"]  # "joined" first
    assert [m.get("text") for m in chat(A)] == ["1"]
    # B: A's "1" and "2", then "left", and its own "4" refused (it left): delivered to nobody
    assert [m.get("text") for m in chat(B)] == ["1", "2", None, None]
    assert chat(B)[2] == {"action": "left", "room": "lobby"}
    assert chat(B)[3]["error"] == "not_a_member"
    assert presence(A) == []  # presence is not on the chat path
    pump(ctx)  # one window: one frame to each member still in the room
    calls.clear()
    assert presence(A) == presence(C) == [("joined", C), ("left", B)]
    assert presence(B) == []  # it left
    send(ctx, (C, {**hello, "text": "5"}))
    assert calls.count("Query") == 1  # a new batch reads the room again
    assert [m.get("text") for m in chat(A)] == ["1", "5"]
    assert len(chat(B)) == 4


def test_an_idempotent_send_whose_fanout_failed_is_delivered_on_the_retry(
    atconn: AtConnections, ctx: HandlerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fan-out is settled after the idempotency record was saved COMPLETED: the record must
    # still be re-executed on the retry, not answered as a duplicate.
    from runtime_kit.kinesis_events import seqs
    from runtime_kit.roster_table import TABLE

    from pipeline.runtime.container import reset
    from pipeline.runtime.idempotency import idempotent

    monkeypatch.setenv("ROSTER_TABLE_NAME", TABLE)
    reset()
    try:
        for cid in (A, B):
            ctx.roster.join(cid, "r")
        frame = {"action": "send", "room": "r", "text": "hi", "id": "m-1"}
        evt = event((A, envelope("send", A, frame)))
        atconn.broken.add(B)
        first = process_batch(evt, None, idempotent(chat.record_handler), ctx=ctx)
        assert first == {"batchItemFailures": [{"itemIdentifier": seqs(evt)[0]}]}
        atconn.broken.discard(B)
        again = process_batch(evt, None, idempotent(chat.record_handler), ctx=ctx)
        assert again == {"batchItemFailures": []}
        assert atconn.received(B) == [{"action": "message", "room": "r", "from": A,
                                       "text": "hi"}]
    finally:
        reset()


def test_a_join_is_answered_from_the_roster_write_without_reading_the_room(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    from pipeline.runtime.presence import publish_open_connections

    for i in range(30):
        ctx.roster.join(f"M{i:02d}", "lobby")
    # The OpenConnections gauge (one Scan per container a minute) is not this path's cost: it
    # is published now, as a warm container has, so the calls below are the join's own.
    assert publish_open_connections(ctx.roster) is not None
    calls: list[str] = []
    ddb.meta.events.register("before-call.dynamodb",
                             lambda model, **_: calls.append(model.name))
    send(ctx, (A, {"action": "join", "room": "lobby"}), (B, {"action": "leave", "room": "lobby"}))
    # whatever the room's size; a join and a leave next to each other share one call
    assert calls == ["BatchWriteItem"]
    # joined to A, left to B, nobody else on this path (two connections: no order between them)
    assert sorted(atconn.delivered_to()) == sorted([A, B])


def test_a_send_to_more_than_one_page_goes_through_the_fanout_tier(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    from dataclasses import replace

    ctx.fanout_shape = replace(ctx.fanout_shape or FanoutShape(), page_size=2)
    members = [A, B, C, "D0000000000000=", "E0000000000000="]
    for cid in members:
        ctx.roster.join(cid, "big")
    send(ctx, (A, {"action": "send", "room": "big", "text": "all"}))
    assert atconn.delivered_to() == []  # 4 others > one page of 2: nothing posted by chat
    pump(ctx)
    assert sorted(atconn.delivered_to()) == sorted(members[1:])  # each exactly once
    send(ctx, (A, {"action": "leave", "room": "big"}), (B, {"action": "leave", "room": "big"}))
    before = len(atconn.posts)
    send(ctx, (C, {"action": "send", "room": "big", "text": "few"}))
    assert len(atconn.posts) == before + 2  # 2 others: one page, posted by chat itself
