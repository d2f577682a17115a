"""fanout: the fan-out tier. Posts one page of a broadcast (pipeline.runtime.fanout).

The record is a SERVER envelope with route key ``fanout`` whose body is
``{"recipients": [connectionId, ...], "message": {...}}``, written by a producer (``broadcast``).
Every recipient gets the message, in stream order per recipient; gone ones are pruned; single
failures are logged, not replayed (a page whose every post failed is retried). The posts keep to
this container's share of the @connections quota (``CONNECTIONS_RPS``) and back off on 429.
"""

from __future__ import annotations

from typing import Any

from pipeline.runtime import Envelope, HandlerContext, process_batch


def record_handler(record: Envelope, ctx: HandlerContext) -> None:
    body = record.body_object()
    recipients = body.get("recipients") if body else None
    message = body.get("message") if body else None
    if (not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients)
            or not isinstance(message, dict)):
        ctx.logger.error("fan-out page is not {recipients, message}; dropped",
                         extra={"sequenceNumber": record.sequence_number})
        return
    ctx.fanout(recipients, message, record)


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_batch(event, context, record_handler)
