"""Presence: who is in a room, join/leave events, and the open-connections gauge.

API Gateway publishes no gauge of open connections, so the roster's count of ``$connect`` META
items is published as the EMF metric ``OpenConnections`` (at most once a minute per container:
a COUNT scan reads the whole table, ~1 RCU per 4 KB, so its cost grows with the roster).

Presence events go to a room's other members when someone joins, leaves, disconnects or is
pruned after a 410; only for rooms of at most ``PRESENCE_MAX_MEMBERS`` members, so a join to a
100,000-member room is not itself a 100,000-post broadcast (``who`` answers any room).
"""

from __future__ import annotations

import time
from typing import Any

from . import observability as obs
from .exceptions import PipelineRuntimeError

PRESENCE_MAX_MEMBERS = 1000
WHO_MAX_MEMBERS = 1000  # ~90 bytes each: the answer stays well under a 128 KB message
OPEN_CONNECTIONS_EVERY_S = 60.0
OPEN_CONNECTIONS = "OpenConnections"

_last_published: dict[str, float] = {}


def presence_event(room: str, kind: str, member: dict[str, Any]) -> dict[str, Any]:
    """``{"action":"presence","room":R,"joined"|"left":{connectionId, principal, ...}}``."""
    return {"action": "presence", "room": room, kind: member}


def publish_open_connections(roster: Any, *, now: float | None = None,
                             every_s: float = OPEN_CONNECTIONS_EVERY_S) -> int | None:
    """Add the ``OpenConnections`` gauge to this invocation's metrics when the last one is
    older than ``every_s``; the count published, or None when it was not due."""
    now = time.monotonic() if now is None else now
    last = _last_published.get(roster.table_name)
    if last is not None and now - last < every_s:
        return None
    _last_published[roster.table_name] = now
    try:
        count = int(roster.count_connections())
    except PipelineRuntimeError as exc:  # a gauge is best effort: never fail a record for it
        obs.logger.warning("OpenConnections not published", extra={"error": str(exc)})
        return None
    obs.metrics.add_metric(name=OPEN_CONNECTIONS, unit=obs.MetricUnit.Count, value=count)
    return count


def forget_published() -> None:
    """Forget when the gauge was last published (tests)."""
    _last_published.clear()
