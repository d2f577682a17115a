"""Acks of the acked route (chat ``send``, docs/acks.md): ingest latency, nacks and retries.

An ack or nack names the route and API Gateway's request id, never the client's frame (a response
template cannot see the request), so answers are matched to frames in send order: the gateway
answers one connection's frames in the order it received them. A retryable nack means the frame
was not stored, so the load test resends it as it was (no ``id`` needed: nothing can be
duplicated), after a capped exponential backoff with jitter, at most ``MAX_ATTEMPTS`` times.
Frames still unanswered when the run ends are counted as ``ackMissing``.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

MAX_ATTEMPTS = 4  # the first send and three retries
BASE_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0


def backoff_s(attempt: int, rng: random.Random | None = None) -> float:
    """Full-jitter backoff before retry ``attempt`` (1, 2, ...): uniform in [0, min(cap, base*2^n))."""
    ceiling = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0.0, ceiling)


@dataclass
class Pending:
    """One acked frame awaiting its answer."""

    frame: str
    sent_us: float  # the first attempt's send: ingest latency includes the retries
    attempt: int = 1


@dataclass
class Answer:
    """What one ack/nack means: the frame it answers, and whether to resend it."""

    pending: Pending | None
    ingest_us: float | None = None  # first send -> ack
    error: str | None = None  # the nack's AWS error code
    retry: bool = False
    gave_up: bool = False


@dataclass
class AckTracker:
    """The in-flight acked frames of one connection, oldest first."""

    pending: deque[Pending] = field(default_factory=deque)

    def sent(self, frame: str, first_us: float, attempt: int = 1) -> None:
        """A frame was sent; ``first_us`` is when its first attempt was."""
        self.pending.append(Pending(frame, first_us, attempt))

    def answer(self, message: dict[str, Any], now_us: float) -> Answer:
        """Match an ack/nack frame to the oldest unanswered frame."""
        if not self.pending:
            return Answer(None)  # an answer to nothing we sent: counted as unexpected
        head = self.pending.popleft()
        if message.get("action") == "ack":
            return Answer(head, ingest_us=now_us - head.sent_us)
        error = str(message.get("error") or "UnknownError")
        retryable = message.get("retryable") is True
        retry = retryable and head.attempt < MAX_ATTEMPTS
        return Answer(head, error=error, retry=retry, gave_up=not retry)

    @property
    def missing(self) -> int:
        return len(self.pending)
