"""A token bucket that keeps one container's share of the account's @connections quota.

Every ``postToConnection`` counts against the account's API Gateway request quota (10,000
requests per second per account and region, burst 5,000, shared by every API):
https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
The stack divides ``-c connectionsRps=N`` between the functions that post
(``CONNECTIONS_RPS_SHARE``, the function's part) and each function's share between its
concurrent invocations (open shards x ``PARALLELIZATION_FACTOR``); a container keeps its part with
one :class:`TokenBucket` shared by its threads. The open shard count is the stream's, read and
cached by :mod:`.shardcount` (an on-demand stream grows; issue 21 finding 2), and the bucket's
rate follows it (:func:`share_rate`, :meth:`TokenBucket.set_rate`); ``CONNECTIONS_RPS`` (the
stack's count) is the rate before the first reading.

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
SHARE_ENV = "CONNECTIONS_RPS_SHARE"  # the function's part of connectionsRps, all containers
FACTOR_ENV = "PARALLELIZATION_FACTOR"  # of the function's mapping
MIN_RATE = 1.0
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

    def set_rate(self, rate: float) -> None:
        """Change the rate (and the default burst with it); the schedule keeps its debt."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0, not {rate!r}")
        with self._lock:
            if rate == self.rate:
                return
            self.rate = float(rate)
            self.burst = max(1.0, self.rate * BURST_S)
            self._interval = 1.0 / self.rate
            self._tolerance = (self.burst - 1.0) * self._interval

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


def share_rate(open_shards: int, environ: dict[str, str] | None = None) -> float | None:
    """A container's posts per second with ``open_shards`` shards: the function's share over
    its concurrent invocations (None when the stack gave no share)."""
    env = environ if environ is not None else os.environ
    try:
        share = float(env.get(SHARE_ENV) or 0)
        factor = max(1, int(env.get(FACTOR_ENV) or 1))
    except ValueError:
        return None
    if share <= 0:
        return None
    return max(MIN_RATE, share / (max(1, open_shards) * factor))


def bucket_from_env(environ: dict[str, str] | None = None) -> TokenBucket | None:
    """The container's bucket from ``CONNECTIONS_RPS`` (posts per second); None when unset/0."""
    raw = (environ if environ is not None else os.environ).get(RPS_ENV, "")
    try:
        rate = float(raw) if raw else 0.0
    except ValueError:
        return None
    return TokenBucket(rate) if rate > 0 else None
