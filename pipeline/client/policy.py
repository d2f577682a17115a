"""The client's decisions, with no I/O: backoff, refusal, room tracking, ack answers.

Shared rules of the Python client (:mod:`pipeline.client.connection`) and the browser module
(``client.js``, which follows the same rules in JavaScript).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Mapping, MutableSet
from dataclasses import dataclass
from typing import Any

REFUSED_STATUSES = frozenset({401, 403})  # $connect refused by the authorizer or IAM
CLOCK_SKEW_S = 30


@dataclass(frozen=True)
class ClientOptions:
    """How a client behaves; the defaults fit API Gateway's documented limits."""

    ping_interval_s: float = 300.0  # API Gateway closes a connection idle for 10 minutes
    max_connection_s: float = 6600.0  # ... and every connection after 2 hours: replace at 110 min
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 30.0
    ack_routes: tuple[str, ...] = ("send",)  # the consumers' "ackRoutes"
    ack_timeout_s: float = 5.0  # docs/acks.md "The retry rule"
    ack_attempts: int = 4
    ack_backoff_base_s: float = 0.05
    ack_backoff_cap_s: float = 1.0
    max_queued: int = 1000  # frames kept while not connected
    open_timeout_s: float = 10.0


def backoff_delay(attempt: int, base_s: float, cap_s: float,
                  uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Full jitter: ``uniform(0, min(cap, base * 2**attempt))``."""
    return uniform(0.0, min(cap_s, base_s * 2 ** min(attempt, 32)))


def token_expired(token: str, now: float) -> bool:
    """Whether a JWT's ``exp`` (read, not verified) is in the past; False when unreadable."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return False
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return isinstance(exp, int | float) and not isinstance(exp, bool) and exp + CLOCK_SKEW_S < now


def track_rooms(rooms: MutableSet[str], frame: Mapping[str, Any]) -> None:
    """Remember the rooms joined (re-joined after a reconnect) and forget the ones left."""
    room = frame.get("room")
    if not isinstance(room, str):
        return
    if frame.get("action") == "join":
        rooms.add(room)
    elif frame.get("action") == "leave":
        rooms.discard(room)


def ack_answer(frame: Any) -> tuple[str, str, bool] | None:
    """``(route, "ack"|"nack", retryable)`` for an ack or nack frame, else None."""
    if not isinstance(frame, dict) or frame.get("action") not in ("ack", "nack"):
        return None
    route = frame.get("route")
    if not isinstance(route, str):
        return None
    return route, str(frame["action"]), bool(frame.get("retryable"))
