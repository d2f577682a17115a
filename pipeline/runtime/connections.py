"""Posting to WebSocket connections through the API Gateway Management API (@connections).

One client per container and endpoint, with two thread pools (each created on first use, shared
by every invocation): the ``post`` pool for fan-outs and a small ``reply`` pool, so a reply is
never queued behind a room's fan-out. Posts go out on the pools' threads over pooled
keep-alive connections (:mod:`.signed_http`: keep-alive sockets and a cached
SigV4 signer, ~10x less CPU per post than boto3's ``post_to_connection``, whose ~1 ms per call is
paid under the GIL). The signer's credentials are the keys Lambda puts in the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``: the execution role's,
https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime),
so a container's first post does not import boto3 (~0.43 s of CPU here, more than the handler's
own import); boto3's credential chain is the fallback where they are not set (:mod:`.credentials`).

Answers (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html):
- 2xx: delivered.
- 410 ``GoneException``: the connection no longer exists -> ``gone`` (the caller prunes it).
- 413 ``PayloadTooLargeException``: the sender's message is too big -> ``too_large``, not retried.
- 429 ``LimitExceededException``/``TooManyRequestsException`` (the account's request quota):
  retried with capped exponential backoff and full jitter until the deadline (a bounded number
  of attempts without one), and the container's token bucket is held back briefly, so a 429 storm
  slows the posts instead of losing them.
  https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
- 5xx, connection errors: retried the same way, a bounded number of attempts, then ``failed``.
- anything else (400, 403 ``ForbiddenException``...): ``failed`` at once.

A post given a ``deadline`` (a ``time.monotonic()`` instant: the invocation's, see
:mod:`.invocation`) does not start an attempt or a backoff past it: it fails with the code
``DeadlineExceeded`` instead, so a degraded endpoint fails the affected records (reported in the
partial batch response) rather than running the invocation into its timeout, which would replay
every record of the batch.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipeline.names import CONNECTIONS_ENDPOINT_VARIABLE

from .container import container
from .credentials import credential_source
from .exceptions import PipelineRuntimeError
from .ratelimit import TokenBucket, bucket_from_env
from .signed_http import SignedPoster, region_of

DEFAULT_WORKERS = 48
# Threads that post replies: their own lane, so a reply never waits for a thread behind a
# broadcast's posts (which may be waiting for rate-limit tokens). Wide enough that a batch's
# replies go out in one wave: each post waits an in-Region round trip (~10-15 ms), so 12 threads
# answered a join storm's batches of ~30 in three waves (python -m loadtest.bench_join_storm:
# room of 1,000, join p99 128-136 ms with 12, 110-164 ms with 32, same box, alternate runs).
# A batch runs at most this many drain tasks on the lane, each taking the next connection
# (:mod:`.replies`), so a batch to fewer connections wakes fewer threads.
REPLY_WORKERS = 32
RETRYABLE_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException",
     "InternalServerErrorException", "ServiceUnavailableException"}
)
THROTTLING_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException"})
# After a 429 the container's bulk posts pause this long (the quota is spent by someone else).
THROTTLE_PAUSE_S = 0.05


class Outcome(StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"
    TOO_LARGE = "too_large"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PostResult:
    """What happened to one post: outcome, attempts made, HTTP status and AWS error code."""

    connection_id: str
    outcome: Outcome
    attempts: int
    status: int = 200
    error_code: str = ""
    done_ms: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter: sleep U(0, min(cap, base * 2**attempt))."""

    max_attempts: int = 5
    base_s: float = 0.05
    cap_s: float = 1.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.cap_s, self.base_s * (2**attempt)))


class ConnectionsClient:
    """Posts bytes to connections; thread-safe; use :func:`connections_client` for the shared one.

    ``credentials`` returns credentials or ``None`` (default: the environment's keys, else
    boto3's chain, resolved once: :func:`.credentials.credential_source`); ``workers`` bounds
    both the thread pool and the idle keep-alive connections kept; ``limiter`` (default: from
    ``CONNECTIONS_RPS``, see :mod:`.ratelimit`) paces the posts.
    """

    def __init__(
        self,
        endpoint_url: str,
        *,
        workers: int = DEFAULT_WORKERS,
        retry: RetryPolicy | None = None,
        region: str | None = None,
        credentials: Callable[[], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: TokenBucket | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.workers = max(1, workers)
        self._sleep = sleep
        self.poster = SignedPoster(
            endpoint_url, region=region or region_of(endpoint_url),
            credentials=credentials or credential_source(), maxsize=self.workers)
        self._pool: ThreadPoolExecutor | None = None
        self._reply_pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def post(self, connection_id: str, data: bytes, *, deadline: float | None = None,
             priority: bool = False) -> PostResult:
        """Post to one connection, retrying throttling and 5xx until ``deadline`` (a
        ``time.monotonic()`` instant, or none); never raises for AWS errors. ``priority``
        (a reply) takes its rate-limit token at once; other posts wait for theirs."""
        attempt = 0
        throttled = 0
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return _deadline_exceeded(connection_id, attempt)
            if self.limiter is not None:
                if priority:
                    self.limiter.take()
                elif not self.limiter.acquire(deadline):
                    return _deadline_exceeded(connection_id, attempt)
            attempt += 1
            status, code = self.poster.post_once(connection_id, data)
            done = int(time.time() * 1000)
            if 200 <= status < 300:
                return PostResult(connection_id, Outcome.DELIVERED, attempt, status, "", done)
            if status == 410 or code == "GoneException":
                return PostResult(connection_id, Outcome.GONE, attempt, 410, code, done)
            if status == 413 or code == "PayloadTooLargeException":
                return PostResult(connection_id, Outcome.TOO_LARGE, attempt, 413, code, done)
            retryable = status in (0, 429) or status >= 500 or code in RETRYABLE_CODES
            throttle = status == 429 or code in THROTTLING_CODES
            if throttle:
                throttled += 1
                if self.limiter is not None:
                    self.limiter.penalize(THROTTLE_PAUSE_S)
            # Throttling is retried until the deadline: the quota frees up, nothing is wrong.
            spent = attempt - (throttled if deadline is not None else 0)
            budget_spent = spent >= self.retry.max_attempts
            if not retryable or budget_spent:
                return PostResult(connection_id, Outcome.FAILED, attempt, status, code, done)
            delay = self.retry.delay(throttled - 1 if throttle else attempt - 1)
            if deadline is not None and time.monotonic() + delay >= deadline:
                return PostResult(connection_id, Outcome.FAILED, attempt, status, code, done)
            self._sleep(delay)

    def post_many(self, connection_ids: Iterable[str], data: bytes, *,
                  deadline: float | None = None) -> list[PostResult]:
        """Post the same bytes to many connections concurrently (bounded by ``workers``)."""
        ids = list(dict.fromkeys(connection_ids))  # one post per connection, order kept
        if len(ids) <= 1:
            return [self.post(cid, data, deadline=deadline) for cid in ids]
        # min(workers, n) tasks that each take the next index until none is left: one task
        # (and one keep-alive connection) per worker, not one future per connection.
        results: list[PostResult | None] = [None] * len(ids)
        todo = deque(range(len(ids)))

        def drain() -> None:
            while True:
                try:
                    i = todo.popleft()
                except IndexError:
                    return
                results[i] = self.post(ids[i], data, deadline=deadline)

        futures = [self.submit(drain) for _ in range(min(self.workers, len(ids)))]
        for future in futures:
            future.result()
        return [r for r in results if r is not None]

    def lane_width(self, priority: bool) -> int:
        """Threads of the reply lane (``priority``) or of the fan-out lane."""
        return REPLY_WORKERS if priority else self.workers

    def submit(self, fn: Callable[[], None], *, priority: bool = False) -> Future[None]:
        """Run ``fn`` on the client's thread pool (``workers`` threads, made on first use), or
        with ``priority`` on the reply lane (its own ``REPLY_WORKERS`` threads)."""
        with self._pool_lock:
            if priority:
                if self._reply_pool is None:
                    self._reply_pool = ThreadPoolExecutor(REPLY_WORKERS,
                                                          thread_name_prefix="reply")
                return self._reply_pool.submit(fn)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="post")
            return self._pool.submit(fn)

    def close(self) -> None:
        """Stop the thread pools, close idle connections (tests; a container keeps them)."""
        with self._pool_lock:
            pools, self._pool, self._reply_pool = (self._pool, self._reply_pool), None, None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True)
        self.poster.close()


def _deadline_exceeded(connection_id: str, attempts: int) -> PostResult:
    return PostResult(connection_id, Outcome.FAILED, attempts, 0, "DeadlineExceeded",
                      int(time.time() * 1000))


def connections_client(endpoint_url: str | None = None) -> ConnectionsClient:
    """The container's client for ``endpoint_url`` (default env ``CONNECTIONS_ENDPOINT_URL``)."""
    url = endpoint_url or os.environ.get(CONNECTIONS_ENDPOINT_VARIABLE, "")
    if not url:
        raise PipelineRuntimeError(f"{CONNECTIONS_ENDPOINT_VARIABLE} is not set")
    shared = container()
    return shared.shared(shared.connections, url,
                         lambda: ConnectionsClient(url, limiter=bucket_from_env()))
