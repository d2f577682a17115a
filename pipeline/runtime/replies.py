"""The reply sink: an invocation's posts, concurrent across connections, FIFO per connection.

Each connection has one queue, drained by one task on the :class:`~.connections.ConnectionsClient`
pool at a time, so a connection gets its posts in the order they were queued (the stream's
order) while different connections are posted to concurrently. Per connection, within the
invocation:

- a reply that fails for good (after the client's bounded retries, or at the deadline) holds
  back that connection's later replies: they are not sent (``skipped = HELD``), so nothing
  overtakes the failed one when the records are retried;
- a 410 answer ends the connection: its later posts are not sent (``skipped = GONE``);
  API Gateway never reuses a connection id;
- a reply answered 413 is followed by a ``payload_too_large`` error frame (not for an error
  frame itself);
- fan-out posts are sent even after a failed reply and do not hold anything back (a fan-out's
  failures are the recipients' problem, see :mod:`.invocation`).

Two lanes: a connection whose next post is a reply is drained on the client's reply lane and
posts with priority (its rate-limit token at once, :mod:`.ratelimit`); fan-out posts are drained
on the bulk lane and wait for their tokens. So a reply to a sender is never queued behind a
running broadcast (only behind the earlier posts to its own connection, which order requires).

Only the HTTP exchanges run on the pool's threads; the caller accounts the outcomes
(metrics, logs, pruning) on its own thread once :meth:`ReplySink.wait` returns.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import orjson

from .connections import ConnectionsClient, Outcome, PostResult
from .envelope import Envelope

HELD = "held"  # not sent: an earlier reply to the connection failed in this invocation
GONE = "gone"  # not sent: the connection answered 410 earlier in this invocation


def now_ms() -> int:
    return int(time.time() * 1000)


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"action":"error","error":code,"message":message, ...}`` (docs/contracts.md)."""
    return {"action": "error", "error": code, "message": message, **extra}


TOO_LARGE_FRAME = orjson.dumps(error_frame(
    "payload_too_large", "the reply is larger than the 128 KB a WebSocket message may carry"))


@dataclass(eq=False)
class Post:
    """One queued post and, once drained, what happened to it."""

    connection_id: str
    data: bytes
    record: Envelope | None  # what its latency metrics are measured from
    tag: Any  # the record it is charged to (its index in the batch)
    is_error: bool = False  # an error frame: no payload_too_large frame after a 413
    in_fanout: bool = False
    result: PostResult | None = None  # None: not sent, see ``skipped``
    followup: PostResult | None = None  # the payload_too_large error frame sent after a 413
    skipped: str = ""  # HELD or GONE when not sent


class ReplySink:
    """Queues posts and drains them on the client's pool; thread-safe for one producer."""

    def __init__(self, client: Callable[[], ConnectionsClient], deadline: float | None) -> None:
        self.deadline = deadline
        self._client = client  # resolved on the first post, on the invocation's thread
        self._posts: list[Post] = []
        self._queues: dict[str, deque[Post]] = {}
        self._failed: set[str] = set()
        self._gone: set[str] = set()
        self._lock = threading.Lock()
        self._futures: list[tuple[Future[None], Callable[[], None]]] = []

    def put(self, post: Post) -> None:
        """Queue ``post`` behind the earlier posts to its connection."""
        client = self._client()
        self._posts.append(post)
        with self._lock:
            queue = self._queues.get(post.connection_id)
            start = queue is None
            if queue is None:
                queue = self._queues[post.connection_id] = deque()
            queue.append(post)
        if start:
            self._start(client, post.connection_id, priority=not post.in_fanout)

    def _start(self, client: ConnectionsClient, cid: str, *, priority: bool) -> None:
        def drain() -> None:
            self._drain(client, cid, priority)

        future = client.submit(drain, priority=priority)
        with self._lock:
            self._futures.append((future, drain))

    def send(self, connection_id: str, data: bytes) -> PostResult:
        """Post now, on the caller's thread, outside the queues (with the deadline)."""
        return _post_safely(self._client(), connection_id, data, self.deadline)

    def wait(self) -> list[Post]:
        """Wait for every queued post; all of them, in the order they were queued.

        A drain no pool thread has started yet is taken back (``Future.cancel`` succeeds only
        before it runs) and run here: the waiting thread would be idle anyway, and a batch's
        last reply is sent without two thread hand-offs (to a pool thread and back), ~0.1 ms
        of a one-record batch's ~0.35 ms.
        """
        done = 0
        while True:  # a drain may hand its connection over to the other lane meanwhile
            with self._lock:
                pending = self._futures[done:]
            if not pending:
                break
            for future, drain in pending:
                if future.cancel():
                    drain()
                else:
                    future.result()
            done += len(pending)
        with self._lock:
            posts, self._posts, self._futures = self._posts, [], []
        return posts

    def _drain(self, client: ConnectionsClient, connection_id: str, priority: bool) -> None:
        # One drain per connection at a time: only it touches this connection's entries of
        # _failed and _gone.
        while True:
            with self._lock:
                queue = self._queues[connection_id]
                if not queue:
                    del self._queues[connection_id]  # a later post starts a new drain
                    return
                if queue[0].in_fanout == priority:  # the next post belongs to the other lane
                    handover = True
                else:
                    handover = False
                    post = queue.popleft()
            if handover:  # the queue stays registered, so no other drain starts meanwhile
                self._start(client, connection_id, priority=not priority)
                return
            if connection_id in self._gone:
                post.skipped = GONE
                continue
            if not post.in_fanout and connection_id in self._failed:
                post.skipped = HELD  # it must not overtake the failed one (retried in order)
                continue
            post.result = _post_safely(client, connection_id, post.data, self.deadline,
                                       priority=priority)
            outcome = post.result.outcome
            if outcome is Outcome.GONE:
                self._gone.add(connection_id)
            elif post.in_fanout:
                continue
            elif outcome is Outcome.TOO_LARGE and not post.is_error:
                post.followup = _post_safely(client, connection_id, TOO_LARGE_FRAME,
                                             self.deadline, priority=priority)
                if post.followup.outcome is Outcome.FAILED:
                    self._failed.add(connection_id)
            elif outcome is Outcome.FAILED:
                self._failed.add(connection_id)


def _post_safely(client: ConnectionsClient, connection_id: str, data: bytes,
                 deadline: float | None, *, priority: bool = True) -> PostResult:
    """``client.post``, with anything it raises (a bug, no credentials) as a failed post."""
    try:
        return client.post(connection_id, data, deadline=deadline, priority=priority)
    except Exception as exc:
        return PostResult(connection_id, Outcome.FAILED, 1, 0, type(exc).__name__, now_ms())
