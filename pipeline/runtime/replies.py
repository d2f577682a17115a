"""The reply sink: an invocation's posts, concurrent across connections, FIFO per connection.

Each connection has one queue, drained by one task on the :class:`~.connections.ConnectionsClient`
pool at a time, so a connection gets its posts in the order they were queued (the stream's
order) while different connections are posted to concurrently. A lane runs at most as many drain
tasks as it has threads, each taking the next waiting connection until none is left (as
``ConnectionsClient.post_many`` does), and the invocation's own thread drains the connections
still waiting when it waits: a batch of 100 replies to 100 connections submits ~32 tasks, not
100 (one ``Future`` and one thread wake-up each). Per connection, within the invocation:

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
        # Per lane (True: the reply lane): connections waiting for a drain, drain tasks
        # submitted and not finished, and those of them no pool thread has started yet.
        self._ready: dict[bool, deque[str]] = {True: deque(), False: deque()}
        self._running = {True: 0, False: 0}
        self._starting = {True: 0, False: 0}
        self._tasks: list[tuple[Future[None], bool]] = []

    def put(self, post: Post) -> None:
        """Queue ``post`` behind the earlier posts to its connection."""
        client = self._client()
        self._posts.append(post)
        cid = post.connection_id
        with self._lock:
            queue = self._queues.get(cid)
            if queue is not None:
                queue.append(post)
                return
            self._queues[cid] = deque((post,))
            start = self._ready_locked(client, cid, priority=not post.in_fanout)
        if start:
            self._submit(client, priority=not post.in_fanout)

    def _ready_locked(self, client: ConnectionsClient, cid: str, *, priority: bool) -> bool:
        """Make ``cid`` wait for a drain on its lane; whether a new drain task must start.

        A lane runs at most ``client.lane_width`` drain tasks, each taking the next waiting
        connection until none is left, so a batch costs a task per pool thread, not one per
        connection; a new one starts only when the waiting connections outnumber the tasks
        no pool thread has started yet (a started task is posting: a new connection would
        wait for its round trip)."""
        ready = self._ready[priority]
        ready.append(cid)
        if (self._running[priority] >= client.lane_width(priority)
                or self._starting[priority] >= len(ready)):
            return False
        self._running[priority] += 1
        self._starting[priority] += 1
        return True

    def _submit(self, client: ConnectionsClient, *, priority: bool) -> None:
        future = client.submit(lambda: self._run(client, priority), priority=priority)
        with self._lock:
            self._tasks.append((future, priority))

    def _run(self, client: ConnectionsClient, priority: bool) -> None:
        """A drain task: drain waiting connections of its lane until none is left."""
        with self._lock:
            self._starting[priority] -= 1
        try:
            self._drain_lane(client, priority)
        finally:
            with self._lock:
                self._running[priority] -= 1

    def _drain_lane(self, client: ConnectionsClient, priority: bool) -> None:
        ready = self._ready[priority]
        while True:
            with self._lock:
                if not ready:
                    return
                cid = ready.popleft()
            self._drain(client, cid, priority)

    def send(self, connection_id: str, data: bytes) -> PostResult:
        """Post now, on the caller's thread, outside the queues (with the deadline)."""
        return _post_safely(self._client(), connection_id, data, self.deadline)

    def wait(self) -> list[Post]:
        """Wait for every queued post; all of them, in the order they were queued.

        The waiting thread drains the connections still waiting (reply lane first) itself,
        and takes back the drain tasks no pool thread has started yet (``Future.cancel``
        succeeds only before one runs): it would be idle anyway, and every post it makes
        saves two thread hand-offs (to a pool thread and back), ~0.1 ms of a one-record
        batch's ~0.35 ms.
        """
        while True:
            if self._posts:
                client = self._client()
                self._drain_lane(client, True)
                self._drain_lane(client, False)
            with self._lock:
                tasks, self._tasks = self._tasks, []
                idle = not tasks and not self._ready[True] and not self._ready[False]
            if idle:
                break
            for future, priority in tasks:
                if future.cancel():
                    with self._lock:
                        self._running[priority] -= 1
                        self._starting[priority] -= 1
            for future, _ in tasks:
                if not future.cancelled():
                    future.result()
        with self._lock:
            posts, self._posts = self._posts, []
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
                with self._lock:
                    start = self._ready_locked(client, connection_id, priority=not priority)
                if start:
                    self._submit(client, priority=not priority)
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
