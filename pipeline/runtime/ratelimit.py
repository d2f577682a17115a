"""A token bucket that keeps one container's share of the account's @connections quota.

Every ``postToConnection`` counts against the account's API Gateway request quota (10,000
requests per second per account and region, burst 5,000, shared by every API):
https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
The stack divides ``-c connectionsRps=N`` between the functions that post and each function's
share between its concurrent invocations (shards x ParallelizationFactor); a container gets its
part in ``CONNECTIONS_RPS`` and keeps it with one :class:`TokenBucket` shared by its threads.

Two classes of posts take tokens:

- **bulk** (a fan-out's posts) wait for a token (:meth:`TokenBucket.acquire`), never past the
  invocation's deadline;
- **priority** (replies to a sender) take a token at once (:meth:`TokenBucket.take`), even into
  debt: the bulk posts pay the debt back by waiting longer, so the container's long-run rate stays
  at its share while a reply is never queued behind a broadcast's tokens.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

RPS_ENV = "CONNECTIONS_RPS"
BURST_S = 0.25


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` at once; thread-safe.

    Kept as a schedule (GCRA, the "virtual scheduling" form of a token bucket): each bulk post
    reserves the next free slot and sleeps once until it, so 48 waiting threads do not wake up
    together for every token.
    """

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, not {rate!r}")
        self.rate = float(rate)
        # A quarter second of posts by default: enough to make up for the gap between two
        # batches of a lane (tokens saved while idle), small next to the account's burst.
        self.burst = float(burst) if burst is not None else max(1.0, self.rate * BURST_S)
        self._clock = clock
        self._sleep = sleep
        self._interval = 1.0 / self.rate
        self._tolerance = (self.burst - 1.0) * self._interval  # burst posts at once
        self._tat = clock() - self._tolerance  # theoretical arrival time: starts full
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time bulk posts spent waiting (a metric and a test hook)

    def take(self) -> None:
        """Take one token now, into debt if there is none (priority posts)."""
        with self._lock:
            self._tat = max(self._tat, self._clock()) + self._interval

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait for one token; False (nothing taken) if it would only come after ``deadline``
        (a ``time.monotonic()`` instant)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._tat - self._tolerance)
            if deadline is not None and slot > deadline:
                return False
            self._tat = max(self._tat, slot) + self._interval
        wait = slot - now
        if wait > 1e-6:
            self._sleep(wait)
            self.waited_s += wait
        return True

    def penalize(self, seconds: float) -> None:
        """Hold every bulk post back ~``seconds`` (after a 429: the quota is spent elsewhere)."""
        with self._lock:
            self._tat = max(self._tat, self._clock() + seconds + self._tolerance)


def bucket_from_env(environ: dict[str, str] | None = None) -> TokenBucket | None:
    """The container's bucket from ``CONNECTIONS_RPS`` (posts per second); None when unset/0."""
    raw = (environ if environ is not None else os.environ).get(RPS_ENV, "")
    try:
        rate = float(raw) if raw else 0.0
    except ValueError:
        return None
    return TokenBucket(rate) if rate > 0 else None
