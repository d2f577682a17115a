"""presence: a window of joins and leaves -> one ``presence`` frame per member per room.

The records are SERVER envelopes with route key ``presence`` whose body is
``{"room": R, "joined"|"left": {connectionId, principal, ...}}``, put by ``chat`` (one per join,
leave or disconnect, partition key ``presence#R``). The mapping batches for ``presenceWindowMs``,
so one invocation sees a window's deltas; per room (pipeline.runtime.presence.coalesce: the last
change of a connection wins) it reads at most ``PRESENCE_MAX_MEMBERS + 1`` members and, when the
room is not above the cap, writes one frame
``{"action":"presence","room":R,"joined":[...],"left":[...]}`` to every current member through
the fan-out tier (pages on the stream, posted by ``fanout``). Rooms above the cap get nothing:
``who`` answers them. A page write that keeps failing fails the batch (retried: a member may see
a window's frame twice; presence restates state, so that is harmless).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pipeline.runtime.presence as presence
from pipeline.runtime import Envelope, HandlerContext, process_batch
from pipeline.runtime.presence import coalesce

MEMO_KEY = "presence.deltas"
_ctx = HandlerContext()


def record_handler(record: Envelope, ctx: HandlerContext) -> None:
    body = record.body_object()
    if body is None:
        ctx.logger.error("presence delta is not a JSON object; dropped",
                         extra={"sequenceNumber": record.sequence_number})
        return
    ctx.memo.setdefault(MEMO_KEY, []).append(body)


def flush(ctx: HandlerContext, deltas: Iterable[Mapping[str, Any]]) -> int:
    """One frame per room of the window to its members; the rooms sent to."""
    cap = presence.PRESENCE_MAX_MEMBERS
    sent = 0
    for room, changes in coalesce(deltas).items():
        members = ctx.roster.members_upto(room, cap + 1)  # bounded, whatever the room's size
        if len(members) > cap:
            continue
        gone = changes.left_ids()
        recipients = [m for m in members if m not in gone]
        if recipients:
            ctx.fanout_pages(f"presence:{room}", recipients, changes.event(room))
            sent += 1
    ctx.logger.info("presence window", extra={"rooms": sent})
    return sent


def handle(event: dict[str, Any], context: Any, ctx: HandlerContext) -> Any:
    """Collect the batch's deltas, then send the window's frames."""
    response = process_batch(event, context, record_handler, ctx=ctx)
    flush(ctx, ctx.memo.get(MEMO_KEY, []))
    return response


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return handle(event, context, _ctx)
