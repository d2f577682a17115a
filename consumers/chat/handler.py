"""chat: rooms, direct messages and presence. join, leave, send, dm, who; clean-up on disconnect.

Validation (bad input -> ``invalid_request`` error frame to the sender, nothing written):
- ``room``: 1-64 characters of ``[A-Za-z0-9_.:-]``;
- ``text``: a string of at most 4,000 characters (empty is allowed);
- ``to`` (dm): a principal, 1-256 characters.

Replies: join -> ``{"action":"joined","room":R}``, leave -> ``{"action":"left","room":R}`` (both
idempotent), send -> ``{"action":"message","room":R,"from":<sender>,"text":T}`` to every other
member and nothing to the sender; a sender that is not a member of R gets the error frame
``not_a_member`` and nobody receives the message. ``$disconnect`` deletes every roster item of
the connection (its META and both items of each membership).

- dm -> ``{"action":"dm","from":<principal or null>,"fromConnection":<cid>,"text":T}`` to every
  connection of the principal ``to`` (the roster's byPrincipal index) and no one else; the sender
  gets ``{"action":"dm_sent","to":P,"connections":n}`` (n = 0: the principal is not connected).
- who -> ``{"action":"who","room":R,"members":[{connectionId, principal, joinedAt}],
  "truncated":bool}`` (at most 1,000 members); only a member may ask (else ``not_a_member``).
- presence: each join, leave (reason ``left``) and disconnect (``disconnected``) makes one delta
  (pipeline.runtime.presence); a batch's deltas go on the stream together, in one PutRecords
  after the batch (if they cannot be written, the records that made them fail and are retried:
  joins and leaves are idempotent); the ``presence`` consumer sends each member of a
  room of at most ``presenceMaxMembers`` at most one frame per window,
  ``{"action":"presence","room":R,"joined":[{connectionId, principal, joinedAt}],
  "left":[{connectionId, principal?, reason}]}``. A 410 prune (``gone``) is announced by the
  runtime. ``joined``/``left`` are answered from the roster write, before any presence work.
- the ``OpenConnections`` metric (EMF) is published at most once a minute (pipeline.runtime.presence).

``send`` to a room of more than one fan-out page of other members (``FANOUT_PAGE_SIZE``) goes
through the fan-out tier (pipeline.runtime.fanout), like a broadcast; smaller rooms are posted
here, in order with the sender's replies.

A room's members are read once per batch (one strongly consistent Query; the sender's
membership is answered from the same result) and kept up to date with the batch's own joins,
leaves and disconnects, so a batch of sends to a few rooms costs a few Queries, not two
DynamoDB calls per send. Membership changes made meanwhile by another shard's invocation are
seen by the next batch: records of different shards are not ordered with each other anyway.

A batch's consecutive joins and leaves (a join storm) share their roster writes, and so do its
consecutive ``$disconnect`` records: when the first record of such a run is handled, the run's
writes are cut into BatchWriteItem chunks (``write_chunks``: 25 items, fewer where a key
repeats; a disconnect run first reads each of its connections' items), and each chunk is
written in one call when the first record with a write in it is reached; the others only reply
and announce. A record whose write failed raises, as its own write would have. A record of
another kind (``send``, ``who``, ``dm``, a frame with an ``id``, a bad frame) ends the run, so
no write is made before every earlier record of the batch has been handled: a ``send`` never
reaches a later joiner.
"""

from __future__ import annotations

from typing import Any

from pipeline.runtime import Envelope, HandlerContext, process_batch
from pipeline.runtime.exceptions import RosterError, SkippedAfterFailure, UndecodableRecord
from pipeline.runtime.fanout import FanoutError, FanoutShape
from pipeline.runtime.idempotency import frame_id, idempotent
from pipeline.runtime.presence import (
    WHO_MAX_MEMBERS,
    delta_envelope,
    delta_key,
    publish_open_connections,
)
from pipeline.runtime.records import decode_record
from pipeline.runtime.roster import (
    ROOM_PATTERN,
    Chunk,
    MembershipChange,
    WriteRequest,
    delete_requests,
    write_chunks,
)

MAX_TEXT_CHARS = 4000
MAX_PRINCIPAL_CHARS = 256
DELTAS = "chat.deltas"  # memo: the batch's presence deltas, (sequence number, key, data)
RUNS = "chat.runs"  # memo: the batch's records and their shared membership writes (_Runs)
_ctx = HandlerContext()


def record_handler(record: Envelope, ctx: HandlerContext) -> None:
    publish_open_connections(ctx.roster)
    if _is_disconnect(record):
        _disconnect(record, ctx)
        return
    frame = record.body_object()
    if frame is None:
        ctx.error(record, "invalid_request", "the frame must be a JSON object")
        return
    action = record.route_key
    if action == "dm":
        _dm(record, ctx, frame.get("to"), frame.get("text"))
        return
    room = frame.get("room")
    if not isinstance(room, str) or not ROOM_PATTERN.match(room):
        ctx.error(record, "invalid_request",
                  "room must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
        return
    if action == "join":
        _join(record, ctx, room)
    elif action == "leave":
        _leave(record, ctx, room)
    elif action == "send":
        _send(record, ctx, room, frame.get("text"))
    elif action == "who":
        _who(record, ctx, room)
    else:
        ctx.error(record, "unknown_action", f"chat has no action {action!r}", received=action)


def _join(record: Envelope, ctx: HandlerContext, room: str) -> None:
    # Answered from the roster write alone: no read of the room, no post to its members.
    member = _write(record, ctx, MembershipChange(record.connection_id, room, True,
                                                  record.principal)).member()
    if room in _known_rooms(ctx):
        _known_rooms(ctx)[room][record.connection_id] = None
    ctx.reply(record, {"action": "joined", "room": room})
    _announce(ctx, record, room, "joined", member.as_dict())


def _leave(record: Envelope, ctx: HandlerContext, room: str) -> None:
    _write(record, ctx, MembershipChange(record.connection_id, room, False))
    _known_rooms(ctx).get(room, {}).pop(record.connection_id, None)
    ctx.reply(record, {"action": "left", "room": room})
    _announce(ctx, record, room, "left", {
        "connectionId": record.connection_id, "principal": record.principal, "reason": "left"})


def _write(record: Envelope, ctx: HandlerContext, change: MembershipChange) -> MembershipChange:
    """The record's membership change, written (with its run's, see :class:`_Runs`); raises
    the error that failed its write."""
    runs: _Runs | None = ctx.memo.get(RUNS)
    position = runs.position(record) if runs is not None else None
    if runs is None or position is None or runs.kinds[position] != _MEMBERSHIP:
        # Alone (a frame with an id, or no lookahead): its own write, inside its execution.
        error = ctx.roster.write_memberships([change])[0]
        if error is not None:
            raise error
        return change
    runs.write(position, ctx)
    written = runs.changes[position]
    assert written is not None  # a membership run's record
    return written


def _disconnect(record: Envelope, ctx: HandlerContext) -> None:
    runs: _Runs | None = ctx.memo.get(RUNS)
    position = runs.position(record) if runs is not None else None
    if runs is None or position is None or runs.kinds[position] != _DISCONNECT:
        rooms = ctx.roster.remove_connection_rooms(record.connection_id).rooms
    else:
        runs.write(position, ctx)
        rooms = runs.rooms.get(position, [])
    for members in _known_rooms(ctx).values():
        members.pop(record.connection_id, None)
    for room in rooms:
        _announce(ctx, record, room, "left", {
            "connectionId": record.connection_id, "principal": record.principal,
            "reason": "disconnected"})


_MEMBERSHIP, _DISCONNECT = "membership", "disconnect"  # the kinds of runs


class _Runs:
    """The batch's records, read ahead in order, and the outcomes of their shared writes.

    A run is a stretch of consecutive records of one kind: valid joins and leaves without an
    ``id`` (``changes[i]`` is record i's), or ``$disconnect`` records. A membership run's
    writes are cut into chunks when its first record is handled; a disconnect run first reads
    the items of each of its connections (one Query each, when its first record is handled:
    every earlier record of those connections has been by then, and a connection has no record
    after its ``$disconnect``) and cuts their deletes into chunks. A chunk is written when the
    first record with a write in it is reached.

    A duplicate record (Lambda's at-least-once redelivery) writes again what it wrote the first
    time, as its own call would: putting or deleting the same items again is harmless. A frame
    with an ``id`` is never shared: the idempotency utility may find it a duplicate and skip
    it, so its write is made inside its execution, as before.

    (A plain class: the function loads this file as a module that is not in ``sys.modules``,
    where a dataclass cannot resolve its annotations.)"""

    def __init__(self, records: list[Envelope | None], partition_keys: list[str]) -> None:
        self.records = records
        self.changes = [_shareable(r) for r in records]
        self.kinds = [_MEMBERSHIP if c is not None else _DISCONNECT
                      if _is_disconnect(r) and r is not None and frame_id(r) is None
                      else None for r, c in zip(records, self.changes, strict=True)]
        self.partition_keys = partition_keys  # of each record's Kinesis record (what fails)
        self.index = {(r.sequence_number, r.sub_sequence_number): i
                      for i, r in enumerate(records) if r is not None}
        self.rooms: dict[int, list[str]] = {}  # a disconnect's position -> the rooms it left
        self.chunks: list[Chunk] = []  # of the runs planned so far, positions as indices
        self.written_chunks = 0  # chunks[:written_chunks] are written (or given up)
        self.last_chunk: dict[int, int] = {}  # position -> the chunk with its last write (or -1)
        self.errors: dict[int, Exception] = {}  # position -> what failed its write
        self.failed_keys: set[str] = set()

    @classmethod
    def read(cls, event: dict[str, Any]) -> _Runs:
        records: list[Envelope | None] = []
        keys: list[str] = []
        raw = event.get("Records")
        for item in raw if isinstance(raw, list) else []:
            kinesis = item.get("kinesis") if isinstance(item, dict) else None
            key = str(kinesis.get("partitionKey", "")) if isinstance(kinesis, dict) else ""
            try:
                decoded: list[Envelope | None] = list(decode_record(item))
            except (UndecodableRecord, AttributeError):  # the processor reports these
                decoded = [None]
            records += decoded
            keys += [key] * len(decoded)
        return cls(records, keys)

    def position(self, record: Envelope) -> int | None:
        return self.index.get((record.sequence_number, record.sub_sequence_number))

    def write(self, position: int, ctx: HandlerContext) -> None:
        """Make record ``position``'s writes (now, if its chunks are not written yet); raises
        what failed them."""
        if position not in self.last_chunk:
            self._plan(position, ctx)
        while self.written_chunks <= self.last_chunk[position]:
            self._write(self.chunks[self.written_chunks], ctx)
            self.written_chunks += 1
        error = self.errors.get(position)
        if error is not None:
            raise error

    def _plan(self, start: int, ctx: HandlerContext) -> None:
        """Cut the run that starts at ``start`` (every record before it has been handled) into
        chunks. The chunks of an earlier run not written by now belong to records the batch
        processor skipped (retried later): they are given up."""
        kind = self.kinds[start]
        end = start
        while end < len(self.kinds) and self.kinds[end] == kind:
            end += 1
        requests: list[tuple[int, WriteRequest]] = []
        for position in range(start, end):
            self.last_chunk[position] = -1  # no write yet
            change, record = self.changes[position], self.records[position]
            if change is not None:
                requests += [(position, request) for request in change.requests()]
            elif record is not None and self.partition_keys[position] not in self.failed_keys:
                try:
                    keys, self.rooms[position] = ctx.roster.connection_items(
                        record.connection_id)
                except RosterError as exc:
                    self.errors[position] = exc
                    continue
                requests += [(position, request) for request in delete_requests(keys)]
        self.written_chunks = len(self.chunks)
        for chunk in write_chunks(requests):
            self.chunks.append(chunk)
            for position, _ in chunk:
                self.last_chunk[position] = len(self.chunks) - 1

    def _write(self, chunk: Chunk, ctx: HandlerContext) -> None:
        # A record after a failed one of its connection is skipped by the batch processor (and
        # retried): its writes are not made either.
        live: Chunk = []
        for position, request in chunk:
            key = self.partition_keys[position]
            if key not in self.failed_keys:
                live.append((position, request))
            elif position not in self.errors:
                record = self.records[position]
                self.errors[position] = SkippedAfterFailure(
                    record.sequence_number if record is not None else "?", key)
        if not live:
            return
        for position, error in ctx.roster.write_chunk(live).items():
            self.errors.setdefault(position, error)
            self.failed_keys.add(self.partition_keys[position])


def _is_disconnect(record: Envelope | None) -> bool:
    return record is not None and (
        record.event_type == "DISCONNECT" or record.route_key == "$disconnect")


def _shareable(record: Envelope | None) -> MembershipChange | None:
    """The record's membership change when its write may be shared with its neighbours'."""
    if record is None or record.event_type != "MESSAGE" or record.route_key not in (
            "join", "leave") or frame_id(record) is not None:
        return None
    frame = record.body_object()
    room = frame.get("room") if frame is not None else None
    if not isinstance(room, str) or not ROOM_PATTERN.match(room):
        return None
    return MembershipChange(record.connection_id, room, record.route_key == "join",
                            record.principal)


def _announce(ctx: HandlerContext, record: Envelope, room: str, kind: str,
              member: dict[str, Any]) -> None:
    """One presence delta (O(1) here, whatever the room's size), put with the batch's others
    by :func:`handle`; the ``presence`` consumer coalesces a window of them into one frame per
    member."""
    deltas: list[tuple[str, str, bytes]] = ctx.memo.setdefault(DELTAS, [])
    deltas.append((record.sequence_number, delta_key(room), delta_envelope(
        room, kind, member, request_time_ms=record.request_time_epoch)))


def _send(record: Envelope, ctx: HandlerContext, room: str, text: Any) -> None:
    if not _valid_text(record, ctx, text):
        return
    members = _members(ctx, room)
    if record.connection_id not in members:
        ctx.error(record, "not_a_member", f"join room {room!r} before sending to it")
        return
    others = [cid for cid in members if cid != record.connection_id]
    message = {"action": "message", "room": room, "from": record.connection_id, "text": text}
    if len(others) > _page_size(ctx):
        # More than one page: the fan-out tier posts it (the same pages as a broadcast's), so
        # this batch holds at most batchSize x one page of posts (synth checks that pace).
        ctx.fanout_pages(f"room:{room}", others, message, record)
    else:
        ctx.fanout(others, message, record)


def _page_size(ctx: HandlerContext) -> int:
    return (ctx.fanout_shape or FanoutShape.from_env()).page_size


def _dm(record: Envelope, ctx: HandlerContext, to: Any, text: Any) -> None:
    if not isinstance(to, str) or not 1 <= len(to) <= MAX_PRINCIPAL_CHARS:
        ctx.error(record, "invalid_request",
                  f"to must be a principal of 1-{MAX_PRINCIPAL_CHARS} characters")
        return
    if not _valid_text(record, ctx, text):
        return
    message = {"action": "dm", "from": record.principal or None,
               "fromConnection": record.connection_id, "text": text}
    report = ctx.send_to_user(to, message, record)
    ctx.reply(record, {"action": "dm_sent", "to": to, "connections": report.queued})


def _who(record: Envelope, ctx: HandlerContext, room: str) -> None:
    if record.connection_id not in _members(ctx, room):
        ctx.error(record, "not_a_member", f"join room {room!r} before asking who is in it")
        return
    members: list[dict[str, object]] = []
    truncated = False
    for member in ctx.roster.member_details(room):
        if len(members) == WHO_MAX_MEMBERS:
            truncated = True
            break
        members.append(member.as_dict())
    ctx.reply(record, {"action": "who", "room": room, "members": members,
                       "truncated": truncated})


def _valid_text(record: Envelope, ctx: HandlerContext, text: Any) -> bool:
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        ctx.error(record, "invalid_request",
                  f"text must be a string of at most {MAX_TEXT_CHARS} characters")
        return False
    return True


def _known_rooms(ctx: HandlerContext) -> dict[str, dict[str, None]]:
    """The rooms whose members this batch has read: room -> member ids (insertion-ordered)."""
    rooms: dict[str, dict[str, None]] = ctx.memo.setdefault("chat.rooms", {})
    return rooms


def _members(ctx: HandlerContext, room: str) -> dict[str, None]:
    """The room's members, read from the roster on the batch's first use of the room."""
    rooms = _known_rooms(ctx)
    if room not in rooms:
        rooms[room] = dict.fromkeys(ctx.roster.members(room))
    return rooms[room]


def handle(event: dict[str, Any], context: Any, ctx: HandlerContext) -> Any:
    """The batch, then its presence deltas in one PutRecords (one call per batch instead of
    one per join: a join storm's batch of 100 joins makes 1 call, not 100). The records are
    read ahead once, so a run of joins and leaves shares its roster writes (:class:`_Runs`)."""
    runs = _Runs.read(event)

    def with_runs(record: Envelope, ctx: HandlerContext) -> None:
        ctx.memo.setdefault(RUNS, runs)
        record_handler(record, ctx)

    response = process_batch(event, context, idempotent(with_runs), ctx=ctx)
    deltas: list[tuple[str, str, bytes]] = ctx.memo.get(DELTAS) or []
    if not deltas:
        return response
    try:
        ctx.put_records([(key, data) for _, key, data in deltas])
    except FanoutError as exc:
        ctx.logger.error("presence deltas not written: their records fail", extra={
            "deltas": len(deltas), "error": str(exc)})
        failed = dict.fromkeys(str(i["itemIdentifier"]) for i in response["batchItemFailures"])
        failed.update(dict.fromkeys(seq for seq, _, _ in deltas))
        response = {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
    return response


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return handle(event, context, _ctx)
