"""The connection roster (DynamoDB; schema in docs/contracts.md).

Items: ``CONN#<cid>/META`` (written by ``$connect``; with ``principalKey`` when authenticated,
which the sparse ``byPrincipal`` index keys), and per membership two items,
``CONN#<cid>/ROOM#<room>`` and ``ROOM#<room>/CONN#<cid>``, written and deleted together (one
BatchWriteItem each way). :meth:`Roster.write_memberships` writes many joins and leaves in one
BatchWriteItem per chunk of :func:`membership_chunks` (a batch of join records: one call per 12
joins instead of one per join).
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .container import container
from .exceptions import AwsCallError, PipelineRuntimeError, RosterError, aws_call_errors

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

# Longer than the 2 h connection limit, like the $connect item (contracts: connect + 3 h).
MEMBERSHIP_TTL_SECONDS = 3 * 3600
P = ParamSpec("P")
T = TypeVar("T")
BATCH_WRITE_MAX = 25  # BatchWriteItem limit
# A room name: what the chat consumer accepts and `python -m pipeline publish --room` checks.
ROOM_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_UNPROCESSED_ATTEMPTS = 8
PRINCIPAL_INDEX = "byPrincipal"  # pipeline/infrastructure/connection_roster.py


@dataclass(frozen=True)
class Member:
    """One member of a room, as ``who`` answers it."""

    connection_id: str
    principal: str
    joined_at: int  # epoch ms

    def as_dict(self) -> dict[str, object]:
        return {"connectionId": self.connection_id, "principal": self.principal,
                "joinedAt": self.joined_at}


@dataclass(frozen=True)
class MembershipChange:
    """One join (``joined``: put both items of the membership) or leave (delete both)."""

    connection_id: str
    room: str
    joined: bool
    principal: str = ""
    at_ms: int = field(default_factory=lambda: int(time.time() * 1000))  # the join time

    def item_keys(self) -> list[dict[str, Any]]:
        """The keys of the membership's two items."""
        return [_key(f"CONN#{self.connection_id}", f"ROOM#{self.room}"),
                _key(f"ROOM#{self.room}", f"CONN#{self.connection_id}")]

    def member(self) -> Member:
        return Member(self.connection_id, self.principal, self.at_ms)

    def requests(self) -> list[dict[str, Any]]:
        """Its two BatchWriteItem write requests."""
        if not self.joined:
            return delete_requests(self.item_keys())
        attrs = {
            "room": {"S": self.room},
            "connectionId": {"S": self.connection_id},
            "principal": {"S": self.principal},
            "joinedAt": {"N": str(self.at_ms)},
            "expiresAt": {"N": str(self.at_ms // 1000 + MEMBERSHIP_TTL_SECONDS)},
        }
        return [{"PutRequest": {"Item": {**k, **attrs}}} for k in self.item_keys()]


WriteRequest = dict[str, Any]  # one BatchWriteItem PutRequest or DeleteRequest
Chunk = list[tuple[int, WriteRequest]]  # one BatchWriteItem: (index of the change, request)


def membership_chunks(changes: Sequence[MembershipChange]) -> list[Chunk]:
    """The changes' write requests cut into BatchWriteItem chunks (:func:`write_chunks`), each
    request with the index of its change (whose two items may fall in two chunks)."""
    return write_chunks([(index, request) for index, change in enumerate(changes)
                         for request in change.requests()])


def write_chunks(requests: Sequence[tuple[int, WriteRequest]]) -> list[Chunk]:
    """Write requests (each with the index of what it belongs to) cut into BatchWriteItem
    chunks, in order: at most ``BATCH_WRITE_MAX`` per chunk, and a key already in the chunk
    starts a new one, since DynamoDB refuses a request that names a key twice
    (ValidationException) and the same connection joining, then leaving, a room must be written
    in that order."""
    chunks: list[Chunk] = []
    current: Chunk = []
    keys: set[tuple[str, str]] = set()
    for index, request in requests:
        key = _request_key(request)[1:]
        if len(current) == BATCH_WRITE_MAX or key in keys:
            chunks.append(current)
            current, keys = [], set()
        current.append((index, request))
        keys.add(key)
    if current:
        chunks.append(current)
    return chunks


def delete_requests(keys: Sequence[dict[str, Any]]) -> list[WriteRequest]:
    return [{"DeleteRequest": {"Key": k}} for k in keys]


@dataclass(frozen=True)
class Removed:
    """What :meth:`Roster.remove_connection_rooms` deleted."""

    items: int
    rooms: list[str] = field(default_factory=list)


def _guard(operation: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Turn a failed call (the runtime's :class:`AwsCallError`, or botocore's ``ClientError``
    from an injected boto3 client) into :class:`RosterError` (with the AWS error code)."""

    def wrap(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return fn(*args, **kwargs)
            except aws_call_errors("ClientError") as exc:
                raise _roster_error(operation, exc) from exc

        return call

    return wrap


class Roster:
    """Reads and writes the roster table through one shared low-level DynamoDB client."""

    def __init__(self, table_name: str, *, client: Any = None) -> None:
        self.table_name = table_name
        if client is None:
            # the runtime's own signed JSON client, not boto3's (~1 ms less CPU a call, and no
            # boto3 import on a container's first roster call): pipeline.runtime.aws_json
            from .aws_json import dynamodb_client

            client = dynamodb_client()
        self._ddb = client

    @_guard("GetItem")
    def connection(self, connection_id: str) -> dict[str, Any] | None:
        """The connection's META item (plain values), or ``None`` when it is not in the roster."""
        item = self._ddb.get_item(
            TableName=self.table_name,
            Key=_key(f"CONN#{connection_id}", "META"),
            ConsistentRead=True,
        ).get("Item")
        return _plain(item) if item else None

    @_guard("GetItem")
    def is_member(self, connection_id: str, room: str) -> bool:
        """Whether the connection is a member of the room."""
        item = self._ddb.get_item(
            TableName=self.table_name,
            Key=_key(f"CONN#{connection_id}", f"ROOM#{room}"),
            ConsistentRead=True,
            ProjectionExpression="pk",
        ).get("Item")
        return item is not None

    def join(self, connection_id: str, room: str, principal: str = "") -> Member:
        """Make the connection a member of the room (both items in one call; idempotent).

        One BatchWriteItem, not a transaction: both writes are idempotent puts, an unprocessed
        one is resubmitted and one that still fails fails the record (retried), so the pair
        converges without TransactWriteItems' double write cost. (moto's TransactWriteItems also
        copies the whole table for its rollback: O(roster) per join in the twin, ~125 ms at
        1,000 items.)"""
        change = MembershipChange(connection_id, room, True, principal)
        self._raise_failed(self.write_memberships([change]))
        return change.member()

    def leave(self, connection_id: str, room: str) -> None:
        """Remove the membership (both items in one call, as :meth:`join`; idempotent)."""
        self._raise_failed(self.write_memberships([MembershipChange(connection_id, room, False)]))

    def write_memberships(self, changes: Sequence[MembershipChange]) -> list[RosterError | None]:
        """Write the changes in order, one BatchWriteItem per :func:`membership_chunks` chunk;
        for each change, ``None`` when both its items were written, else the error that failed
        it (see :meth:`write_chunk`)."""
        outcomes: list[RosterError | None] = [None] * len(changes)
        for chunk in membership_chunks(changes):
            for index, error in self.write_chunk(chunk).items():
                outcomes[index] = outcomes[index] or error
        return outcomes

    def write_chunk(self, chunk: Chunk) -> dict[int, RosterError]:
        """Write one chunk of :func:`membership_chunks` in one BatchWriteItem; returns the
        changes (their indices) with a write that failed, and why. An unprocessed write is
        resubmitted with backoff and one still unprocessed fails only its own change; a refused
        request fails the chunk's changes. The other writes are done: joins and leaves are
        idempotent, so retrying the failed ones converges."""
        owner = {_request_key(request): index for index, request in chunk}
        failed: dict[int, RosterError] = {}
        for request, error in self._batch_write([request for _, request in chunk]):
            failed.setdefault(owner[_request_key(request)], error)
        return failed

    @staticmethod
    def _raise_failed(outcomes: list[RosterError | None]) -> None:
        for error in outcomes:
            if error is not None:
                raise error

    def members(self, room: str) -> Iterator[str]:
        """Connection ids of the room's members (one strongly consistent, paginated Query; only
        ``connectionId`` is returned, which keeps a 100,000-member read light)."""
        yield from (
            str(item["connectionId"]["S"])
            for item in self._paginate("query", KeyConditionExpression="pk = :pk",
                                       ExpressionAttributeValues={":pk": {"S": f"ROOM#{room}"}},
                                       ConsistentRead=True, ProjectionExpression="connectionId")
        )

    @_guard("Query")
    def members_upto(self, room: str, limit: int) -> list[str]:
        """At most ``limit`` members of the room, from one Query of ``limit`` items (a size
        check that costs ~``limit`` items, not the room)."""
        items = self._ddb.query(
            TableName=self.table_name, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"ROOM#{room}"}}, ConsistentRead=True,
            ProjectionExpression="connectionId", Limit=limit).get("Items", [])
        return [str(item["connectionId"]["S"]) for item in items]

    def member_details(self, room: str) -> Iterator[Member]:
        """The room's members with their principal and join time (``who``)."""
        for item in self._paginate("query", KeyConditionExpression="pk = :pk",
                                   ExpressionAttributeValues={":pk": {"S": f"ROOM#{room}"}},
                                   ConsistentRead=True):
            plain = _plain(item)
            yield Member(str(plain["connectionId"]), str(plain.get("principal", "")),
                         int(plain.get("joinedAt", 0)))

    def connections_of(self, principal: str) -> Iterator[str]:
        """Connection ids of a principal (the ``byPrincipal`` index: eventually consistent, so
        a connection made a moment ago may be missing)."""
        if not principal:
            return
        for item in self._paginate("query", IndexName=PRINCIPAL_INDEX,
                                   KeyConditionExpression="principalKey = :p",
                                   ExpressionAttributeValues={":p": {"S": principal}}):
            yield str(item["pk"]["S"]).removeprefix("CONN#")

    @_guard("Scan")
    def count_connections(self) -> int:
        """How many connections the roster holds (a COUNT scan of the META items)."""
        total = 0
        for page in self._ddb.get_paginator("scan").paginate(
                TableName=self.table_name, Select="COUNT", FilterExpression="sk = :meta",
                ExpressionAttributeValues={":meta": {"S": "META"}}):
            total += int(page.get("Count", 0))
        return total

    def all_connections(self) -> Iterator[str]:
        """Every connection id in the roster (paginated Scan of the META items)."""
        for item in self._paginate("scan", FilterExpression="sk = :meta",
                                   ExpressionAttributeValues={":meta": {"S": "META"}}):
            yield str(item["pk"]["S"]).removeprefix("CONN#")

    def remove_connection(self, connection_id: str) -> int:
        """Delete every item of the connection (META, its memberships, the room-side items).

        Returns how many items were deleted (0 when the connection was not in the roster).
        """
        return self.remove_connection_rooms(connection_id).items

    @_guard("BatchWriteItem")
    def remove_connection_rooms(self, connection_id: str) -> Removed:
        """:meth:`remove_connection`, saying which rooms the connection left."""
        keys, rooms = self.connection_items(connection_id)
        for start in range(0, len(keys), BATCH_WRITE_MAX):
            failed = self._batch_write(delete_requests(keys[start:start + BATCH_WRITE_MAX]))
            if failed:
                raise failed[0][1]
        return Removed(len(keys), rooms)

    def connection_items(self, connection_id: str) -> tuple[list[dict[str, Any]], list[str]]:
        """The keys of every item of the connection (META, its memberships and their room-side
        items: what removing it deletes) and the rooms it is in (one paginated Query)."""
        keys: list[dict[str, Any]] = []
        rooms: list[str] = []
        for item in self._paginate("query", KeyConditionExpression="pk = :pk",
                                   ExpressionAttributeValues={":pk": {"S": f"CONN#{connection_id}"}},
                                   ConsistentRead=True, ProjectionExpression="pk, sk"):
            sk = str(item["sk"]["S"])
            keys.append(_key(f"CONN#{connection_id}", sk))
            if sk.startswith("ROOM#"):
                keys.append(_key(sk, f"CONN#{connection_id}"))
                rooms.append(sk.removeprefix("ROOM#"))
        return keys, rooms

    def _batch_write(
        self, requests: list[WriteRequest]
    ) -> list[tuple[WriteRequest, RosterError]]:
        """At most 25 writes in one BatchWriteItem; unprocessed ones are resubmitted with
        backoff. Returns the writes that failed for good, each with its error."""
        for attempt in range(_UNPROCESSED_ATTEMPTS):
            try:
                answer = self._ddb.batch_write_item(RequestItems={self.table_name: requests})
            except aws_call_errors("ClientError") as exc:
                error = _roster_error("BatchWriteItem", exc)
                error.__cause__ = exc
                return [(request, error) for request in requests]
            requests = answer.get("UnprocessedItems", {}).get(self.table_name, [])
            if not requests:
                return []
            if attempt + 1 < _UNPROCESSED_ATTEMPTS:
                time.sleep(min(1.0, 0.02 * 2**attempt))  # back off before resubmitting (AWS)
        error = RosterError("BatchWriteItem", "UnprocessedItems",
                            f"{len(requests)} writes still unprocessed")
        return [(request, error) for request in requests]

    def _paginate(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        try:
            pages = self._ddb.get_paginator(operation).paginate(TableName=self.table_name, **kwargs)
            for page in pages:
                yield from page.get("Items", [])
        except aws_call_errors("ClientError") as exc:
            raise _roster_error(operation, exc) from exc


def _roster_error(operation: str, exc: AwsCallError | ClientError) -> RosterError:
    if isinstance(exc, AwsCallError):
        return RosterError(operation, exc.code, exc.message)
    err = exc.response.get("Error", {})
    return RosterError(operation, str(err.get("Code", "")), str(err.get("Message", "")))


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _request_key(request: dict[str, Any]) -> tuple[str, str, str]:
    """A write request's kind and item key (which change of a chunk it belongs to)."""
    kind, body = next(iter(request.items()))
    key = body["Key"] if kind == "DeleteRequest" else body["Item"]
    return kind, str(key["pk"]["S"]), str(key["sk"]["S"])


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, typed in item.items():
        (kind, value), = typed.items()
        out[name] = int(value) if kind == "N" and value.lstrip("-").isdigit() else value
    return out


def roster(table_name: str | None = None) -> Roster:
    """The container's roster for ``table_name`` (default env ``ROSTER_TABLE_NAME``)."""
    name = table_name or os.environ.get("ROSTER_TABLE_NAME", "")
    if not name:
        raise PipelineRuntimeError("ROSTER_TABLE_NAME is not set")
    shared = container()
    return shared.shared(shared.rosters, name, lambda: Roster(name))
