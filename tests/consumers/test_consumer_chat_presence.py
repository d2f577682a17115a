"""chat: dm to every connection of a principal, who, presence events, the OpenConnections gauge."""

from __future__ import annotations

import json
from typing import Any

from consumer_loader import load_handler
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import envelope, event
from runtime_kit.roster_table import put_meta
from stream_kit import pump

from pipeline.runtime import HandlerContext
from pipeline.runtime.container import reset
from pipeline.runtime.observability import pending
from pipeline.runtime.presence import publish_open_connections

chat = load_handler("chat")
A1, A2, B1, C1 = "AAAA1aaaaaaaaa=", "AAAA2aaaaaaaaa=", "BBBB1aaaaaaaaa=", "CCCC1aaaaaaaaa="
PRINCIPALS = {A1: "alice", A2: "alice", B1: "bob", C1: ""}


def frame(cid: str, body: dict[str, Any] | None, route: str | None = None) -> tuple[str, bytes]:
    """A record of ``cid`` carrying its principal, as the VTL writes it."""
    route = route or str((body or {}).get("action"))
    doc = json.loads(envelope(route, cid, body or "",
                              event_type="DISCONNECT" if route == "$disconnect" else "MESSAGE"))
    doc["principal"] = PRINCIPALS.get(cid, "")
    return cid, json.dumps(doc).encode()


def run(ctx: HandlerContext, *frames: tuple[str, bytes]) -> None:
    assert chat.handle(event(*frames), None, ctx) == {"batchItemFailures": []}


def connect_all(ddb: Any) -> None:
    for cid, principal in PRINCIPALS.items():
        put_meta(ddb, cid, principal)


def test_dm_reaches_every_connection_of_the_principal_and_no_one_else(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    connect_all(ddb)
    run(ctx, frame(B1, {"action": "dm", "to": "alice", "text": "psst"}))
    dm = {"action": "dm", "from": "bob", "fromConnection": B1, "text": "psst"}
    assert atconn.received(A1) == [dm] and atconn.received(A2) == [dm]
    assert atconn.received(C1) == []
    assert atconn.received(B1) == [{"action": "dm_sent", "to": "alice", "connections": 2}]


def test_dm_to_nobody_or_badly_addressed(atconn: AtConnections, ctx: HandlerContext,
                                         ddb: Any) -> None:
    connect_all(ddb)
    run(ctx, frame(C1, {"action": "dm", "to": "zed", "text": "hi"}),
        frame(C1, {"action": "dm", "to": "", "text": "hi"}),
        frame(C1, {"action": "dm", "to": "alice", "text": 5}))
    answers = atconn.received(C1)
    assert answers[0] == {"action": "dm_sent", "to": "zed", "connections": 0}
    assert [a.get("error") for a in answers[1:]] == ["invalid_request", "invalid_request"]
    assert atconn.delivered_to() == [C1] * 3  # alice got nothing


def test_who_lists_members_with_principal_and_join_time(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    connect_all(ddb)
    run(ctx, frame(A1, {"action": "join", "room": "r"}), frame(B1, {"action": "join", "room": "r"}),
        frame(A1, {"action": "who", "room": "r"}), frame(C1, {"action": "who", "room": "r"}))
    who = atconn.received(A1)[-1]
    assert who["action"] == "who" and who["room"] == "r" and who["truncated"] is False
    assert sorted((m["connectionId"], m["principal"]) for m in who["members"]) == [
        (A1, "alice"), (B1, "bob")]
    assert all(m["joinedAt"] > 1_700_000_000_000 for m in who["members"])
    assert atconn.received(C1)[-1]["error"] == "not_a_member"


def test_presence_across_join_leave_disconnect_and_prune(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    connect_all(ddb)

    def events(cid: str) -> list[list[tuple[str, str, str]]]:
        """Each presence frame of ``cid`` as its (kind, connectionId, reason) entries."""
        return [[(k, m["connectionId"], m.get("reason", "")) for k in ("joined", "left")
                 for m in f[k]] for f in atconn.received(cid) if f["action"] == "presence"]

    run(ctx, *(frame(cid, {"action": "join", "room": "r"}) for cid in (A1, A2, B1, C1)))
    assert events(A1) == []  # answered from the roster write; presence comes after
    assert [m["action"] for m in atconn.received(C1)] == ["joined"]
    pump(ctx)  # one window: one frame per member listing the four joins
    window = [("joined", cid, "") for cid in (A1, A2, B1, C1)]
    assert events(A1) == events(C1) == [window]
    run(ctx, frame(A2, {"action": "leave", "room": "r"}), frame(B1, None, "$disconnect"))
    pump(ctx)
    assert events(C1)[1:] == [[("left", A2, "left"), ("left", B1, "disconnected")]]
    assert events(A2) == [window]  # it left: no frame for the window it left in
    atconn.gone.add(C1)  # C1 vanished without a $disconnect: the next post to it answers 410
    run(ctx, frame(A1, {"action": "send", "room": "r", "text": "anyone?"}))
    pump(ctx)  # the prune's delta is coalesced by the presence consumer like any leave
    assert events(A1)[-1] == [("left", C1, "gone")]  # announced by the runtime's prune
    run(ctx, frame(A1, {"action": "who", "room": "r"}))
    assert [m["connectionId"] for m in atconn.received(A1)[-1]["members"]] == [A1]


def test_a_window_coalesces_a_join_storm_into_one_frame_per_member(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    members = [f"M{i:03d}aaaaaaaaaa=" for i in range(40)]
    for start in range(0, 40, 10):
        run(ctx, *(frame(cid, {"action": "join", "room": "storm"})
                   for cid in members[start:start + 10]))
    assert pump(ctx) >= 40
    frames = [[f for f in atconn.received(cid) if f["action"] == "presence"] for cid in members]
    assert all(len(f) == 1 for f in frames)  # n posts for n joins, not n^2 / 2
    assert [m["connectionId"] for m in frames[0][0]["joined"]] == members
    # a rejoin and a leave in the next window: the last change of a connection wins
    run(ctx, frame(members[0], {"action": "leave", "room": "storm"}),
        frame(members[0], {"action": "join", "room": "storm"}),
        frame(members[1], {"action": "leave", "room": "storm"}))
    pump(ctx)
    last = [f for f in atconn.received(members[2]) if f["action"] == "presence"][-1]
    assert [m["connectionId"] for m in last["joined"]] == [members[0]]
    assert [m["connectionId"] for m in last["left"]] == [members[1]]


def test_rooms_above_the_presence_cap_get_no_presence_frames(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, monkeypatch: Any
) -> None:
    import pipeline.runtime.presence as presence_module

    monkeypatch.setattr(presence_module, "PRESENCE_MAX_MEMBERS", 3)
    connect_all(ddb)
    run(ctx, *(frame(cid, {"action": "join", "room": "big"}) for cid in (A1, A2, B1, C1)))
    pump(ctx)
    assert not [f for c in PRINCIPALS for f in atconn.received(c) if f["action"] == "presence"]
    assert all(atconn.received(c) == [{"action": "joined", "room": "big"}]
               for c in (A1, A2, B1, C1))


def test_open_connections_are_published_at_most_once_a_minute(ctx: HandlerContext,
                                                              ddb: Any) -> None:
    connect_all(ddb)
    reset()
    pending.clear()
    assert publish_open_connections(ctx.roster, now=1000.0) == 4
    assert pending.gauges["OpenConnections"] == [4.0]
    assert publish_open_connections(ctx.roster, now=1030.0) is None
    assert publish_open_connections(ctx.roster, now=1061.0) == 4
    reset()


def test_a_prune_in_a_room_above_the_cap_reads_a_bounded_page_and_stays_quiet(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, monkeypatch: Any
) -> None:
    import pipeline.runtime.presence as presence_module

    monkeypatch.setattr(presence_module, "PRESENCE_MAX_MEMBERS", 2)
    connect_all(ddb)
    for cid in (A1, A2, B1, C1):
        ctx.roster.join(cid, "big")
    queried: list[Any] = []
    ddb.meta.events.register("provide-client-params.dynamodb.Query",
                             lambda params, **_: queried.append(params.get("Limit")))
    atconn.gone.add(C1)
    run(ctx, frame(A1, {"action": "send", "room": "big", "text": "hi"}))
    assert C1 not in set(ctx.roster.members("big"))  # pruned
    queried.clear()
    pump(ctx)  # the presence consumer reads at most cap + 1 members, and stays quiet
    assert queried and all(limit == 3 for limit in queried)
    assert not [m for c in (A1, A2, B1) for m in atconn.received(c) if m["action"] == "presence"]


def test_a_batch_puts_its_presence_deltas_in_one_call_after_the_batch(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    calls: list[int] = []
    writer = ctx.page_writer_client
    assert writer is not None
    writer._kinesis.meta.events.register(
        "before-parameter-build.kinesis.PutRecords",
        lambda params, **_: calls.append(len(params["Records"])))
    members = [f"J{i:03d}aaaaaaaaaa=" for i in range(30)]
    run(ctx, *(frame(cid, {"action": "join", "room": "storm"}) for cid in members),
        frame(members[0], {"action": "leave", "room": "storm"}))
    assert calls == [31]  # 30 joins and a leave: one PutRecords, not 31
    assert all(atconn.received(cid)[0] == {"action": "joined", "room": "storm"}
               for cid in members)


def test_deltas_that_cannot_be_written_fail_the_records_that_made_them(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, monkeypatch: Any
) -> None:
    from pipeline.runtime.fanout import FanoutError

    def refuse(records: list[tuple[str, bytes]]) -> int:
        raise FanoutError("PutRecords failed: throttled")

    assert ctx.page_writer_client is not None
    monkeypatch.setattr(ctx.page_writer_client, "put", refuse)
    evt = event(frame(A1, {"action": "join", "room": "r"}), frame(B1, {"action": "who", "room": "x"}),
                frame(C1, {"action": "join", "room": "r"}))
    seqs = [r["kinesis"]["sequenceNumber"] for r in evt["Records"]]
    response = chat.handle(evt, None, ctx)
    # the joins are retried (idempotent); the record that made no delta is not
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs[0]},
                                              {"itemIdentifier": seqs[2]}]}
