"""Roster access against moto DynamoDB with the schema of docs/contracts.md."""

from __future__ import annotations

from typing import Any

import pytest
from runtime_kit.roster_table import TABLE, all_items, put_meta

from pipeline.runtime import Roster, RosterError
from pipeline.runtime.roster import MembershipChange, membership_chunks


def test_join_writes_both_items_and_leave_deletes_both(ddb: Any, roster: Roster) -> None:
    roster.join("A", "lobby")
    assert all_items(ddb) == [("CONN#A", "ROOM#lobby"), ("ROOM#lobby", "CONN#A")]
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "ROOM#lobby"},
                                              "sk": {"S": "CONN#A"}})["Item"]
    assert item["room"]["S"] == "lobby" and item["connectionId"]["S"] == "A"
    assert int(item["expiresAt"]["N"]) > int(item["joinedAt"]["N"]) // 1000
    assert roster.is_member("A", "lobby")
    roster.leave("A", "lobby")
    roster.leave("A", "lobby")  # idempotent
    assert all_items(ddb) == [] and not roster.is_member("A", "lobby")


def test_members_and_all_connections(ddb: Any, roster: Roster) -> None:
    for cid in ("A", "B", "C"):
        put_meta(ddb, cid)
    roster.join("A", "lobby")
    roster.join("B", "lobby")
    roster.join("C", "other")
    assert sorted(roster.members("lobby")) == ["A", "B"]
    assert list(roster.members("empty")) == []
    assert sorted(roster.all_connections()) == ["A", "B", "C"]
    assert roster.connection("A") == {
        "pk": "CONN#A", "sk": "META", "connectionId": "A", "connectedAt": 1700000000000,
        "sourceIp": "203.0.113.7", "principal": "", "expiresAt": 1700010800}
    assert roster.connection("nobody") is None


def test_remove_connection_deletes_every_item_of_it_and_nothing_else(
    ddb: Any, roster: Roster
) -> None:
    put_meta(ddb, "A")
    put_meta(ddb, "B")
    for room in ("r1", "r2", "r3"):
        roster.join("A", room)
    roster.join("B", "r1")
    assert roster.remove_connection("A") == 7  # META + 3 memberships x 2 items
    assert all_items(ddb) == [("CONN#B", "META"), ("CONN#B", "ROOM#r1"), ("ROOM#r1", "CONN#B")]
    assert roster.remove_connection("A") == 0


def test_a_missing_table_is_a_roster_error_with_the_aws_code(ddb: Any) -> None:
    with pytest.raises(RosterError) as info:
        Roster("no-such-table", client=ddb).join("A", "lobby")
    assert info.value.operation == "BatchWriteItem"
    assert info.value.code == "ResourceNotFoundException"
    with pytest.raises(RosterError):
        list(Roster("no-such-table", client=ddb).members("lobby"))


class _Throttled:
    """The real client, except that the first BatchWriteItem leaves its last write unprocessed
    (as DynamoDB does when throttled)."""

    def __init__(self, ddb: Any) -> None:
        self._ddb = ddb
        self.calls = 0

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        self.calls += 1
        if self.calls > 1:
            return dict(self._ddb.batch_write_item(RequestItems=RequestItems))
        (table, requests), = RequestItems.items()
        self._ddb.batch_write_item(RequestItems={table: requests[:-1]})
        return {"UnprocessedItems": {table: requests[-1:]}}


def test_a_write_left_unprocessed_is_resubmitted_so_join_and_leave_write_both_items(
    ddb: Any
) -> None:
    throttled = _Throttled(ddb)
    roster = Roster(TABLE, client=throttled)
    roster.join("A", "lobby")
    assert throttled.calls == 2
    assert all_items(ddb) == [("CONN#A", "ROOM#lobby"), ("ROOM#lobby", "CONN#A")]
    throttled.calls = 0
    roster.leave("A", "lobby")
    assert throttled.calls == 2 and all_items(ddb) == []


def test_membership_chunks_hold_25_writes_and_never_a_key_twice() -> None:
    joins = [MembershipChange(f"C{i}", "lobby", True) for i in range(30)]
    chunks = membership_chunks(joins)
    assert [len(c) for c in chunks] == [25, 25, 10]
    assert [i for c in chunks for i, _ in c] == [i for i in range(30) for _ in range(2)]
    # the same connection joins and leaves the same room: the leave starts a new chunk
    churn = [MembershipChange("A", "r", True), MembershipChange("B", "r", True),
             MembershipChange("A", "r", False), MembershipChange("A", "s", True)]
    assert [[i for i, _ in c] for c in membership_chunks(churn)] == [[0, 0, 1, 1],
                                                                      [2, 2, 3, 3]]
    assert list(membership_chunks(churn)[1][0][1]) == ["DeleteRequest"]


def test_write_memberships_applies_changes_in_order_one_call_per_chunk(ddb: Any) -> None:
    calls: list[str] = []
    ddb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    roster = Roster(TABLE, client=ddb)
    changes = [MembershipChange(f"C{i:02d}", "lobby", True) for i in range(13)]
    changes += [MembershipChange("C00", "lobby", False), MembershipChange("C01", "x", True)]
    assert roster.write_memberships(changes) == [None] * 15
    assert calls == ["BatchWriteItem"] * 2  # 30 writes: 25, then 5
    assert sorted(roster.members("lobby")) == [f"C{i:02d}" for i in range(1, 13)]
    assert list(roster.members("x")) == ["C01"]


class _Stuck:
    """The real client, except that BatchWriteItem never processes the writes of ``cid``."""

    def __init__(self, ddb: Any, cid: str) -> None:
        self._ddb, self.cid, self.calls = ddb, cid, 0

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        self.calls += 1
        (table, requests), = RequestItems.items()
        stuck = [r for r in requests if f"CONN#{self.cid}" in str(r)]
        done = [r for r in requests if r not in stuck]
        if done:
            self._ddb.batch_write_item(RequestItems={table: done})
        return {"UnprocessedItems": {table: stuck}}


def test_a_write_still_unprocessed_fails_only_its_own_change(ddb: Any) -> None:
    stuck = _Stuck(ddb, "B")
    changes = [MembershipChange(cid, "lobby", True) for cid in ("A", "B", "C")]
    outcomes = Roster(TABLE, client=stuck).write_memberships(changes)
    assert stuck.calls == 8  # the first request, then the stuck writes resubmitted 7 times
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], RosterError) and outcomes[1].code == "UnprocessedItems"
    assert sorted(Roster(TABLE, client=ddb).members("lobby")) == ["A", "C"]
