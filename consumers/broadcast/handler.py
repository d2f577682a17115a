"""broadcast: server-side messages (``python -m pipeline publish``) to a room or to everyone.

The record is a SERVER envelope whose body is ``{"room": R | null, "data": DATA}``; every
member of R (every connection when R is null) gets ``{"action":"broadcast","room":R,
"data":DATA}``, in stream order. Gone members are pruned; single failures are logged and counted,
not replayed; only a broadcast whose every post failed is retried.
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
    report = ctx.fanout(members, {"action": "broadcast", "room": room, "data": body.get("data")},
                        record)
    # The outcomes are counted (metrics) and failures logged when the batch settles.
    ctx.logger.info("broadcast", extra={"room": room, "recipients": report.queued})


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_batch(event, context, record_handler)
