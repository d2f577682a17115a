"""chat: rooms. join, leave, send (to every *other* member), and clean-up on disconnect.

Validation (bad input -> ``invalid_request`` error frame to the sender, nothing written):
- ``room``: 1-64 characters of ``[A-Za-z0-9_.:-]``;
- ``text``: a string of at most 4,000 characters (empty is allowed).

Replies: join -> ``{"action":"joined","room":R}``, leave -> ``{"action":"left","room":R}`` (both
idempotent), send -> ``{"action":"message","room":R,"from":<sender>,"text":T}`` to every other
member and nothing to the sender; a sender that is not a member of R gets the error frame
``not_a_member`` and nobody receives the message. ``$disconnect`` deletes every roster item of
the connection (its META and both items of each membership).
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.runtime import Envelope, HandlerContext, process_batch
from pipeline.runtime.idempotency import idempotent

ROOM_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_TEXT_CHARS = 4000


def record_handler(record: Envelope, ctx: HandlerContext) -> None:
    if record.event_type == "DISCONNECT" or record.route_key == "$disconnect":
        ctx.roster.remove_connection(record.connection_id)
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
        ctx.reply(record, {"action": "joined", "room": room})
    elif action == "leave":
        ctx.roster.leave(record.connection_id, room)
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
    if not ctx.roster.is_member(record.connection_id, room):
        ctx.error(record, "not_a_member", f"join room {room!r} before sending to it")
        return
    others = (cid for cid in ctx.roster.members(room) if cid != record.connection_id)
    message = {"action": "message", "room": room, "from": record.connection_id, "text": text}
    report = ctx.fanout(others, message, record)
    if report.too_large:
        ctx.error(record, "payload_too_large", "the message is too large to deliver")


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_batch(event, context, idempotent(record_handler))
