"""echo: replies to the sender with its data and the per-stage timing (docs/contracts.md).

``{"action":"echo","data":X}`` -> ``{"action":"echo","data":X,"timing":{"gatewayMs":..,
"streamMs":..,"consumerMs":..,"replyMs":..}}`` (epoch ms). A missing ``data`` echoes ``null``.
Replies go out concurrently across connections, in order per connection (``pipeline.runtime``).
"""

from __future__ import annotations

from typing import Any

from pipeline.runtime import Envelope, HandlerContext, now_ms, process_batch
from pipeline.runtime.idempotency import idempotent


def record_handler(record: Envelope, ctx: HandlerContext) -> None:
    frame = record.body_object() or {}
    ctx.reply(record, {
        "action": "echo",
        "data": frame.get("data"),
        "timing": {
            "gatewayMs": record.request_time_epoch,
            "streamMs": record.arrival_ms,
            "consumerMs": ctx.started_ms,
            "replyMs": now_ms(),
        },
    })


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_batch(event, context, idempotent(record_handler))
