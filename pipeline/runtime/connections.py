"""Posting to WebSocket connections through the API Gateway Management API (@connections).

One client and one thread pool per container (created on first use, shared by every
invocation): a broadcast posts with bounded concurrency over pooled keep-alive connections.

Two ways to send the same request: the lean default (:mod:`.signed_http`: keep-alive
``http.client`` connections and a cached SigV4 signer, ~10x less CPU per post than boto3, whose
~1 ms per call is paid under the GIL), and boto3's ``post_to_connection`` (env
``CONNECTIONS_CLIENT=boto3``, ``backend="boto3"``, or when a boto3 ``client`` is passed in).

Answers (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html):
- 2xx: delivered.
- 410 ``GoneException``: the connection no longer exists -> ``gone`` (the caller prunes it).
- 413 ``PayloadTooLargeException``: the sender's message is too big -> ``too_large``, not retried.
- 429 ``LimitExceededException``/``TooManyRequestsException``, 5xx, connection errors: retried
  with capped exponential backoff and full jitter, a bounded number of attempts, then ``failed``.
  botocore's own retries are switched off (``total_max_attempts=1``) so nothing retries twice.
  https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
- anything else (400, 403 ``ForbiddenException``...): ``failed`` at once.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .exceptions import PipelineRuntimeError
from .signed_http import SignedPoster, region_of

DEFAULT_WORKERS = 48

# Per container, one invocation at a time (Lambda): posts stop retrying at this monotonic time,
# so a degraded endpoint fails the affected records (reported in the partial batch response)
# instead of running the whole invocation into its timeout (which would replay every record).
_deadline: float | None = None


def set_invocation_deadline(deadline: float | None) -> None:
    """Posts give up (outcome FAILED, code ``DeadlineExceeded``) rather than retry past this
    ``time.monotonic()`` instant; ``None`` lifts it. :func:`process_batch` sets it per invocation."""
    global _deadline
    _deadline = deadline
BACKENDS = ("lean", "boto3")
RETRYABLE_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException",
     "InternalServerErrorException", "ServiceUnavailableException"}
)


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
    """Posts bytes to connections; thread-safe; use :func:`connections_client` for the shared one."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        workers: int = DEFAULT_WORKERS,
        retry: RetryPolicy | None = None,
        region: str | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        backend: str | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.retry = retry or RetryPolicy()
        self.workers = max(1, workers)
        self._sleep = sleep
        chosen = backend or ("boto3" if client is not None else
                             os.environ.get("CONNECTIONS_CLIENT", "").strip().lower() or "lean")
        if chosen not in BACKENDS:
            raise PipelineRuntimeError(
                f"CONNECTIONS_CLIENT must be one of {', '.join(BACKENDS)}, not {chosen!r}")
        self.backend = chosen
        self._region = region or region_of(endpoint_url)
        self._client = client
        self._lean: SignedPoster | None = None
        if chosen == "lean":
            session = boto3.Session()
            self._lean = SignedPoster(endpoint_url, region=self._region,
                                      credentials=_credentials_of(session), maxsize=self.workers)
        elif client is None:
            self._client = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=endpoint_url,
                region_name=self._region,
                config=Config(
                    max_pool_connections=self.workers,
                    retries={"mode": "standard", "total_max_attempts": 1},
                    connect_timeout=3,
                    read_timeout=10,
                    tcp_keepalive=True,
                ),
            )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def post(self, connection_id: str, data: bytes) -> PostResult:
        """Post to one connection, retrying throttling and 5xx; never raises for AWS errors."""
        attempt = 0
        while True:
            deadline = _deadline
            if deadline is not None and time.monotonic() >= deadline:
                return PostResult(connection_id, Outcome.FAILED, attempt, 0, "DeadlineExceeded",
                                  int(time.time() * 1000))
            attempt += 1
            status, code = self._post_once(connection_id, data)
            done = int(time.time() * 1000)
            if 200 <= status < 300:
                return PostResult(connection_id, Outcome.DELIVERED, attempt, status, "", done)
            if status == 410 or code == "GoneException":
                return PostResult(connection_id, Outcome.GONE, attempt, 410, code, done)
            if status == 413 or code == "PayloadTooLargeException":
                return PostResult(connection_id, Outcome.TOO_LARGE, attempt, 413, code, done)
            retryable = status in (0, 429) or status >= 500 or code in RETRYABLE_CODES
            if not retryable or attempt >= self.retry.max_attempts:
                return PostResult(connection_id, Outcome.FAILED, attempt, status, code, done)
            delay = self.retry.delay(attempt - 1)
            if deadline is not None and time.monotonic() + delay >= deadline:
                return PostResult(connection_id, Outcome.FAILED, attempt, status, code, done)
            self._sleep(delay)

    def post_many(self, connection_ids: Iterable[str], data: bytes) -> list[PostResult]:
        """Post the same bytes to many connections concurrently (bounded by ``workers``)."""
        ids = list(dict.fromkeys(connection_ids))  # one post per connection, order kept
        if len(ids) <= 1:
            return [self.post(cid, data) for cid in ids]
        if self._lean is None:
            return list(self._executor().map(lambda cid: self.post(cid, data), ids))
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
                results[i] = self.post(ids[i], data)

        futures = [self._executor().submit(drain) for _ in range(min(self.workers, len(ids)))]
        for future in futures:
            future.result()
        return [r for r in results if r is not None]

    def _post_once(self, connection_id: str, data: bytes) -> tuple[int, str]:
        if self._lean is not None:
            return self._lean.post_once(connection_id, data)
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            meta = exc.response.get("ResponseMetadata", {})
            code = str(exc.response.get("Error", {}).get("Code", ""))
            return int(meta.get("HTTPStatusCode", 0) or 0), code
        except BotoCoreError as exc:  # connection refused/reset, timeouts: retryable
            return 0, type(exc).__name__
        return 200, ""

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="post")
            return self._pool

    def close(self) -> None:
        """Stop the thread pool, close idle connections (tests; a container keeps them)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        if self._lean is not None:
            self._lean.close()


def _credentials_of(session: boto3.Session) -> Callable[[], Any]:
    """The session's credentials, resolved once (refreshable ones refresh themselves); looked
    up again while there are none."""
    found: list[Any] = []

    def credentials() -> Any:
        if not found:
            creds = session.get_credentials()
            if creds is None:
                return None
            found.append(creds)
        return found[0]

    return credentials


_shared: dict[str, ConnectionsClient] = {}
_shared_lock = threading.Lock()


def connections_client(endpoint_url: str | None = None) -> ConnectionsClient:
    """The container's client for ``endpoint_url`` (default env ``CONNECTIONS_ENDPOINT_URL``)."""
    url = endpoint_url or os.environ.get("CONNECTIONS_ENDPOINT_URL", "")
    if not url:
        raise PipelineRuntimeError("CONNECTIONS_ENDPOINT_URL is not set")
    with _shared_lock:
        if url not in _shared:
            _shared[url] = ConnectionsClient(url)
        return _shared[url]
