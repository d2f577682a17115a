"""fallback ($default): answers what no route claims with an error frame, never an exception.

- a JSON object (any ``action``, or none): ``unknown_action``, with ``"received"`` = the action
  (``null`` when absent or not a string) and ``"routes"`` = the API's client routes (from
  ``CLIENT_ROUTES``, which the stack sets from the registry), also named in the message;
- anything else (not JSON, or JSON that is not an object): ``invalid_frame``.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.runtime import Envelope, HandlerContext, process_batch


def client_routes() -> list[str]:
    """The actions a client can send, as the stack declared them (``CLIENT_ROUTES``)."""
    return [r for r in os.environ.get("CLIENT_ROUTES", "").split(",") if r]


def record_handler(record: Envelope, ctx: HandlerContext) -> None:
    if record.event_type != "MESSAGE" or not record.connection_id:
        return  # only client frames have a sender to answer
    frame = record.body_object()
    if frame is None:
        ctx.error(record, "invalid_frame",
                  'frames must be JSON objects like {"action": "echo", "data": 1}')
        return
    action = frame.get("action")
    received = action if isinstance(action, str) else None
    if received is not None:
        message = f"action {received[:64]!r} is not a known route"
    elif "action" in frame:
        message = "the action must be a string naming a route"
    else:
        message = 'the frame has no "action"'
    routes = client_routes()
    if routes:
        message += f"; the routes are {', '.join(routes)}"
    ctx.error(record, "unknown_action", message, received=received, routes=routes)


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    return process_batch(event, context, record_handler)
