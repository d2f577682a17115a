"""broadcast: server-side messages (``python -m pipeline publish``) to a room or to everyone.

The record is a SERVER envelope whose body is ``{"room": R | null, "data": DATA}``; every
member of R (every connection when R is null) gets ``{"action":"broadcast","room":R,
"data":DATA}``, in stream order. The members (a paginated Query of the room, never a scan; a
scan of the connections only for "everyone") are split into fan-out pages written back to the
stream (``pipeline.runtime.fanout``); the ``fanout`` consumer posts them in parallel across
shards and lanes, each at its share of the @connections quota. A page write that Kinesis keeps
rejecting fails the record (retried: members of pages already written may get it twice).
"""

from __future__ import annotations

from typing import Any

from pipeline.runtime import Envelope, HandlerContext, process_batch


def record_handler(record: Envelope, ctx: HandlerContext) -> None:
    body = record.body_object()
    room = body.get("room") if body else None
    if body is None or not (room is None or isinstance(room, str)):
        ctx.logger.error("broadcast body is not {room, data}; dropped",
                         extra={"sequenceNumber": record.sequence_number, "body": record.body})
        return
    members = ctx.roster.all_connections() if room is None else ctx.roster.members(room)
    message = {"action": "broadcast", "room": room, "data": body.get("data")}
    pages = ctx.fanout_pages("*" if room is None else f"room:{room}", members, message, record)
    ctx.logger.info("broadcast", extra={"room": room, "pages": len(pages),
                                        "recipients": sum(len(p.recipients) for p in pages)})


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_batch(event, context, record_handler)
