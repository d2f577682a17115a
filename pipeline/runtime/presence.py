"""Presence: who is in a room, join/leave events, and the open-connections gauge.

API Gateway publishes no gauge of open connections, so the roster's count of ``$connect`` META
items is published as the EMF metric ``OpenConnections`` (at most once a minute per container:
a COUNT scan reads the whole table, ~1 RCU per 4 KB, so its cost grows with the roster).

Presence is coalesced and capped (issue 22). The chat consumer answers a join or leave from the
roster write and puts one *delta* on the stream (a SERVER envelope, route key ``presence``,
partition key ``presence#<room>``, so a room's deltas reach one lane in order). The ``presence``
consumer reads them with a batching window of ``presenceWindowMs`` and, per batch, sends each
room of at most ``PRESENCE_MAX_MEMBERS`` members one frame listing the window's joins and leaves
(:func:`coalesce`), through the fan-out tier: a member gets at most one ``presence`` frame per
room per window, and a join costs O(1) posts on the chat path and O(members / window) overall.
Rooms above the cap get no per-member events: ``who`` answers them.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import observability as obs
from .container import container
from .exceptions import PipelineRuntimeError

PRESENCE_ROUTE_KEY = "presence"
DEFAULT_PRESENCE_MAX_MEMBERS = 100  # Pusher's presence-channel cap
# Rooms above this many members get no presence frames (env ``PRESENCE_MAX_MEMBERS``, the stack's).
PRESENCE_MAX_MEMBERS = int(os.environ.get("PRESENCE_MAX_MEMBERS") or DEFAULT_PRESENCE_MAX_MEMBERS)
WHO_MAX_MEMBERS = 1000  # ~90 bytes each: the answer stays well under a 128 KB message
OPEN_CONNECTIONS_EVERY_S = 60.0
OPEN_CONNECTIONS = "OpenConnections"

def presence_event(room: str, joined: Iterable[Mapping[str, Any]] = (),
                   left: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """``{"action":"presence","room":R,"joined":[member...],"left":[member...]}``."""
    return {"action": "presence", "room": room, "joined": [dict(m) for m in joined],
            "left": [dict(m) for m in left]}


def delta_key(room: str) -> str:
    """The partition key of a room's presence deltas: one lane, stream order."""
    return f"presence#{room}"


def delta_envelope(room: str, kind: str, member: Mapping[str, Any], *,
                   request_time_ms: int) -> bytes:
    """The SERVER envelope of one join or leave (docs/contracts.md "Presence deltas")."""
    body = json.dumps({"room": room, kind: dict(member)}, separators=(",", ":"))
    return json.dumps({
        "v": 1, "routeKey": PRESENCE_ROUTE_KEY, "eventType": "SERVER", "connectionId": "",
        "requestId": str(uuid.uuid4()), "messageId": "", "requestTimeEpoch": request_time_ms,
        "stage": "", "domainName": "", "sourceIp": "", "principal": "", "body": body,
    }, separators=(",", ":")).encode()


@dataclass
class RoomChanges:
    """A room's joins and leaves in one window: the last change of each connection wins."""

    changes: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, kind: str, member: Mapping[str, Any]) -> None:
        cid = str(member.get("connectionId", ""))
        self.changes.pop(cid, None)  # re-insert: the list keeps the order of the last changes
        self.changes[cid] = (kind, dict(member))

    def event(self, room: str) -> dict[str, Any]:
        return presence_event(
            room, [m for k, m in self.changes.values() if k == "joined"],
            [m for k, m in self.changes.values() if k == "left"])

    def left_ids(self) -> set[str]:
        return {cid for cid, (k, _) in self.changes.items() if k == "left"}


def coalesce(deltas: Iterable[Mapping[str, Any]]) -> dict[str, RoomChanges]:
    """Delta bodies (``{"room":R,"joined"|"left":member}``) -> each room's changes, in order.
    Malformed deltas are skipped."""
    rooms: dict[str, RoomChanges] = {}
    for delta in deltas:
        room = delta.get("room")
        if not isinstance(room, str):
            continue
        for kind in ("joined", "left"):
            member = delta.get(kind)
            if isinstance(member, dict) and isinstance(member.get("connectionId"), str):
                rooms.setdefault(room, RoomChanges()).add(kind, member)
    return rooms


def publish_open_connections(roster: Any, *, now: float | None = None,
                             every_s: float = OPEN_CONNECTIONS_EVERY_S) -> int | None:
    """Add the ``OpenConnections`` gauge to this invocation's metrics when the last one is
    older than ``every_s``; the count published, or None when it was not due."""
    now = time.monotonic() if now is None else now
    published = container().presence_published
    last = published.get(roster.table_name)
    if last is not None and now - last < every_s:
        return None
    published[roster.table_name] = now
    try:
        count = int(roster.count_connections())
    except PipelineRuntimeError as exc:  # a gauge is best effort: never fail a record for it
        obs.logger.warning("OpenConnections not published", extra={"error": str(exc)})
        return None
    obs.gauge(OPEN_CONNECTIONS, count)
    return count
