"""chat: rooms. join, leave, send (to every *other* member), and clean-up on disconnect.

Validation (bad input -> ``invalid_request`` error frame to the sender, nothing written):
- ``room``: 1-64 characters of ``[A-Za-z0-9_.:-]``;
- ``text``: a string of at most 4,000 characters (empty is allowed).

Replies: join -> ``{"action":"joined","room":R}``, leave -> ``{"action":"left","room":R}`` (both
idempotent), send -> ``{"action":"message","room":R,"from":<sender>,"text":T}`` to every other
member and nothing to the sender; a sender that is not a member of R gets the error frame
``not_a_member`` and nobody receives the message. ``$disconnect`` deletes every roster item of
the connection (its META and both items of each membership).

A room's members are read once per batch (one strongly consistent Query; the sender's
membership is answered from the same result) and kept up to date with the batch's own joins,
leaves and disconnects, so a batch of sends to a few rooms costs a few Queries, not two
DynamoDB calls per send. Membership changes made meanwhile by another shard's invocation are
seen by the next batch: records of different shards are not ordered with each other anyway.

The batch's replies and messages go out concurrently across connections and in stream order per
connection (``pipeline.runtime``), instead of each send waiting for its fan-out before the next
record is handled; a recipient that answers 413 makes the runtime send the sender a
``payload_too_large`` error frame when the batch ends.
"""

from __future__ import annotations

from typing import Any

from pipeline.runtime import Envelope, HandlerContext, process_batch
from pipeline.runtime.idempotency import idempotent
from pipeline.runtime.roster import ROOM_PATTERN

MAX_TEXT_CHARS = 4000


def record_handler(record: Envelope, ctx: HandlerContext) -> None:
    if record.event_type == "DISCONNECT" or record.route_key == "$disconnect":
        ctx.roster.remove_connection(record.connection_id)
        for members in _known_rooms(ctx).values():
            members.pop(record.connection_id, None)
        return
    frame = record.body_object()
    if frame is None:
        ctx.error(record, "invalid_request", "the frame must be a JSON object")
        return
    room = frame.get("room")
    if not isinstance(room, str) or not ROOM_PATTERN.match(room):
        ctx.error(record, "invalid_request",
                  "room must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
        return
    action = record.route_key
    if action == "join":
        ctx.roster.join(record.connection_id, room)
        if room in _known_rooms(ctx):
            _known_rooms(ctx)[room][record.connection_id] = None
        ctx.reply(record, {"action": "joined", "room": room})
    elif action == "leave":
        ctx.roster.leave(record.connection_id, room)
        _known_rooms(ctx).get(room, {}).pop(record.connection_id, None)
        ctx.reply(record, {"action": "left", "room": room})
    elif action == "send":
        _send(record, ctx, room, frame.get("text"))
    else:
        ctx.error(record, "unknown_action", f"chat has no action {action!r}", received=action)


def _send(record: Envelope, ctx: HandlerContext, room: str, text: Any) -> None:
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        ctx.error(record, "invalid_request",
                  f"text must be a string of at most {MAX_TEXT_CHARS} characters")
        return
    members = _members(ctx, room)
    if record.connection_id not in members:
        ctx.error(record, "not_a_member", f"join room {room!r} before sending to it")
        return
    others = [cid for cid in members if cid != record.connection_id]
    message = {"action": "message", "room": room, "from": record.connection_id, "text": text}
    ctx.fanout(others, message, record)


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


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_batch(event, context, idempotent(record_handler))
