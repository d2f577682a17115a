"""What a record handler gets besides its record: replies, fan-out, roster, logs, metrics.

``HandlerContext`` turns @connections answers into the documented behaviour:
410 prunes the connection from the roster once per container, 413 becomes a
``payload_too_large`` error frame to the sender, a reply that still fails after the bounded
retries raises :class:`DeliveryError` so the record is reported failed and retried.

Pipelined replies (``process_batch(..., pipelined=True)``): ``reply``/``error`` queue the post
and return at once; a :class:`ReplyPipeline` posts the batch's replies concurrently across
connections and in order per connection (one FIFO each), and the batch waits for every post
before it answers. A post that fails for good fails its record, and the connection's later
replies of the batch are not sent (their records fail too), so a retry redelivers them in order.
A pipelined ``fanout`` queues one post per recipient on the same per-connection FIFOs (so a
member gets the batch's messages in stream order) and keeps the fan-out rules: a recipient's
failure is logged, not retried, and only a fan-out whose every post failed fails its record;
413 sends the sender a ``payload_too_large`` error frame when the batch ends.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import observability as obs
from .connections import ConnectionsClient, Outcome, PostResult, connections_client
from .envelope import Envelope
from .exceptions import DeliveryError, RosterError
from .roster import Roster, roster

_PRUNED_MEMORY = 10_000
PIPELINE_WORKERS = 32  # concurrent connections one batch posts to (the lean client pools 48)
_pruned: OrderedDict[str, None] = OrderedDict()  # per container: prune each connection once


def now_ms() -> int:
    return int(time.time() * 1000)


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"action":"error","error":code,"message":message, ...}`` (docs/contracts.md)."""
    return {"action": "error", "error": code, "message": message, **extra}


@dataclass
class FanoutReport:
    """Counts of one fan-out by outcome, and the ids that failed for good."""

    delivered: int = 0
    gone: int = 0
    too_large: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def attempted(self) -> int:
        return self.delivered + self.gone + self.too_large + len(self.failed)


@dataclass
class HandlerContext:
    """Per invocation: the Lambda context, the consumer start time and the shared clients."""

    lambda_context: Any = None
    started_ms: int = field(default_factory=now_ms)
    connections_client: ConnectionsClient | None = None
    roster_client: Roster | None = None
    logger: Any = obs.logger
    pipeline: ReplyPipeline | None = None  # set by process_batch(pipelined=True)
    tag: Any = None  # what a pipelined post is charged to (the batch's current record)
    # What a handler may remember for the rest of one batch (e.g. a room's members read
    # once); process_batch starts each batch with an empty one.
    memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def connections(self) -> ConnectionsClient:
        if self.connections_client is None:
            self.connections_client = connections_client()
        return self.connections_client

    @property
    def roster(self) -> Roster:
        if self.roster_client is None:
            self.roster_client = roster()
        return self.roster_client

    @property
    def has_roster(self) -> bool:
        return self.roster_client is not None or bool(os.environ.get("ROSTER_TABLE_NAME"))

    def reply(self, record: Envelope, payload: Mapping[str, Any]) -> PostResult:
        """Post ``payload`` to the record's sender. Gone -> pruned; 413 -> error frame instead;
        still failing after retries -> :class:`DeliveryError` (the record is retried).

        Pipelined, the post is queued and a provisional result returned (status 202, 0
        attempts): the outcome is settled when the batch ends."""
        if self.pipeline is not None:
            return self.pipeline.submit(_Post(record.connection_id, _encode(payload), record,
                                              payload.get("action") == "error", self.tag))
        result = self._post_one(record.connection_id, _encode(payload), record)
        if result.outcome is Outcome.TOO_LARGE and payload.get("action") != "error":
            self.error(record, "payload_too_large",
                       "the reply is larger than the 128 KB a WebSocket message may carry")
        elif result.outcome is Outcome.FAILED:
            raise DeliveryError({result.connection_id: _why(result)})
        return result

    def error(self, record: Envelope, code: str, message: str, **extra: Any) -> PostResult:
        """Send an error frame to the record's sender."""
        return self.reply(record, error_frame(code, message, **extra))

    def fanout(
        self, connection_ids: Iterable[str], payload: Mapping[str, Any],
        record: Envelope | None = None,
    ) -> FanoutReport:
        """Post ``payload`` to many connections concurrently; prune the gone ones.

        Individual failures (after retries) are logged and counted, not retried, so one bad
        connection does not replay the message to everyone; when *every* post failed the
        endpoint itself is down and :class:`DeliveryError` makes the record retry.
        """
        if self.pipeline is not None:
            return self.pipeline.fanout(connection_ids, _encode(payload), record, self.tag)
        results = self.connections.post_many(connection_ids, _encode(payload))
        return self._report(results, record)

    def _report(self, results: Iterable[PostResult], record: Envelope | None) -> FanoutReport:
        """Account a fan-out's posts; log the failures; raise when every post failed."""
        report = FanoutReport()
        for result in results:
            self._account(result, record)
            if result.outcome is Outcome.DELIVERED:
                report.delivered += 1
            elif result.outcome is Outcome.GONE:
                report.gone += 1
            elif result.outcome is Outcome.TOO_LARGE:
                report.too_large += 1
            else:
                report.failed[result.connection_id] = _why(result)
        if report.failed:
            self.logger.error("fan-out posts failed", extra={"failed": report.failed,
                                                             "delivered": report.delivered})
            if len(report.failed) == report.attempted:
                raise DeliveryError(report.failed)
        return report

    def prune(self, connection_id: str) -> bool:
        """Remove every roster item of a gone connection, once per container."""
        if connection_id in _pruned or not self.has_roster:
            return False
        try:
            removed = self.roster.remove_connection(connection_id)
        except RosterError as exc:  # the TTL still cleans it up eventually
            self.logger.warning("prune failed", extra={"connectionId": connection_id,
                                                       "error": str(exc)})
            return False
        _pruned[connection_id] = None
        while len(_pruned) > _PRUNED_MEMORY:
            _pruned.popitem(last=False)
        obs.count(obs.CONNECTIONS_PRUNED)
        self.logger.info("pruned gone connection",
                         extra={"connectionId": connection_id, "items": removed})
        return True

    def _post_one(self, connection_id: str, data: bytes, record: Envelope | None) -> PostResult:
        result = self.connections.post(connection_id, data)
        self._account(result, record)
        return result

    def _account(self, result: PostResult, record: Envelope | None) -> None:
        obs.count(obs.POST_RETRIES, result.attempts - 1)
        if result.outcome is Outcome.DELIVERED:
            obs.count(obs.POSTS_DELIVERED)
            obs.latency(obs.CONSUMER_TO_POST_MS, result.done_ms - self.started_ms)
            if record is not None and record.event_type != "SERVER":
                obs.latency(obs.GATEWAY_TO_POST_MS, result.done_ms - record.request_time_epoch)
        elif result.outcome is Outcome.GONE:
            obs.count(obs.POSTS_GONE)
            self.prune(result.connection_id)
        elif result.outcome is Outcome.TOO_LARGE:
            obs.count(obs.POSTS_TOO_LARGE)
        else:
            obs.count(obs.POSTS_FAILED)


@dataclass(eq=False)
class _Post:
    connection_id: str
    data: bytes
    record: Envelope | None
    is_error: bool
    tag: Any
    result: PostResult | None = None  # None: not sent (an earlier post to it failed)
    followup: PostResult | None = None  # the payload_too_large error frame sent instead
    fanout: _Fanout | None = None  # set on the posts of a pipelined fan-out


@dataclass(eq=False)
class _Fanout:
    """One pipelined fan-out: the record it is charged to and its posts, settled together."""

    record: Envelope | None
    tag: Any
    posts: list[_Post] = field(default_factory=list)


_TOO_LARGE_FRAME = orjson.dumps(error_frame(
    "payload_too_large", "the reply is larger than the 128 KB a WebSocket message may carry"))
_FANOUT_TOO_LARGE_FRAME = orjson.dumps(error_frame(
    "payload_too_large", "the message is too large to deliver"))
_pipeline_pool: ThreadPoolExecutor | None = None
_pipeline_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _pipeline_pool
    with _pipeline_lock:
        if _pipeline_pool is None:
            _pipeline_pool = ThreadPoolExecutor(PIPELINE_WORKERS, thread_name_prefix="reply")
        return _pipeline_pool


class ReplyPipeline:
    """The replies of one batch: concurrent across connections, in order per connection.

    Only the HTTP exchange runs on the pool's threads; metrics, logs and pruning happen in
    :meth:`settle`, on the invocation's thread (Powertools Metrics is not thread-safe).
    """

    def __init__(self, ctx: HandlerContext) -> None:
        self._ctx = ctx
        self._posts: list[_Post] = []
        self._queues: dict[str, deque[_Post]] = {}
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self._futures: list[Future[None]] = []
        self._fanouts: list[_Fanout] = []
        self._undo: dict[Any, list[Callable[[], None]]] = {}

    def on_fanout_failure(self, tag: Any, undo: Callable[[], None]) -> None:
        """Call ``undo`` (once, at settle) if a fan-out charged to ``tag`` fails its record:
        e.g. forget an idempotency record saved before the fan-out's outcome was known, so the
        retry runs the handler again instead of being answered as a duplicate."""
        self._undo.setdefault(tag, []).append(undo)

    def fanout(self, connection_ids: Iterable[str], data: bytes, record: Envelope | None,
               tag: Any) -> FanoutReport:
        """Queue ``data`` to each connection (once each); a provisional report (all queued
        posts counted as delivered): the outcome is settled when the batch ends."""
        group = _Fanout(record, tag)
        for cid in dict.fromkeys(connection_ids):
            post = _Post(cid, data, record, False, tag, fanout=group)
            group.posts.append(post)
            self.submit(post)
        if group.posts:
            self._fanouts.append(group)
        return FanoutReport(delivered=len(group.posts))

    def submit(self, post: _Post) -> PostResult:
        client = self._ctx.connections  # created on the invocation's thread
        self._posts.append(post)
        with self._lock:
            queue = self._queues.get(post.connection_id)
            start = queue is None
            if queue is None:
                queue = self._queues[post.connection_id] = deque()
            queue.append(post)
        if start:
            self._futures.append(_pool().submit(self._drain, client, post.connection_id))
        return PostResult(post.connection_id, Outcome.DELIVERED, 0, 202, "", 0)

    def _drain(self, client: ConnectionsClient, connection_id: str) -> None:
        while True:
            with self._lock:
                queue = self._queues[connection_id]
                if not queue:
                    del self._queues[connection_id]  # a later reply starts a new drain
                    return
                post = queue.popleft()
            if post.fanout is not None:
                # A fan-out post is sent even after a failed reply to this connection and does
                # not stop its later posts, as without pipelining (HandlerContext.fanout).
                post.result = _post_safely(client, connection_id, post.data)
                continue
            if connection_id in self._failed:
                continue  # not sent: it must not overtake the failed one (retried in order)
            post.result = _post_safely(client, connection_id, post.data)
            if post.result.outcome is Outcome.TOO_LARGE and not post.is_error:
                post.followup = _post_safely(client, connection_id, _TOO_LARGE_FRAME)
            if Outcome.FAILED in (post.result.outcome, getattr(post.followup, "outcome", None)):
                self._failed.add(connection_id)

    def settle(self) -> list[tuple[Any, DeliveryError]]:
        """Wait for every post; account them; the tags of the posts that failed, in order."""
        for future in self._futures:
            future.result()
        failed: list[tuple[Any, DeliveryError]] = []
        for post in self._posts:
            if post.fanout is not None:
                continue  # below, per fan-out
            outcomes = [r for r in (post.result, post.followup) if r is not None]
            for result in outcomes:
                self._ctx._account(result, post.record)
            bad = [r for r in outcomes if r.outcome is Outcome.FAILED]
            if bad:
                failed.append((post.tag, DeliveryError({post.connection_id: _why(bad[0])})))
            elif post.result is None:
                failed.append((post.tag, DeliveryError(
                    {post.connection_id: "not sent: an earlier reply to it failed"})))
        for group in self._fanouts:
            error = self._settle_fanout(group)
            if error is not None:
                failed.append((group.tag, error))
                for undo in self._undo.pop(group.tag, ()):
                    try:
                        undo()
                    except Exception:  # the record still fails; log what could not be undone
                        self._ctx.logger.exception("undo after a failed fan-out failed")
        self._posts, self._futures, self._fanouts, self._undo = [], [], [], {}
        return failed

    def _settle_fanout(self, group: _Fanout) -> DeliveryError | None:
        """Account a fan-out like ``HandlerContext.fanout``; its record's error, if any."""
        results = [p.result for p in group.posts if p.result is not None]
        try:
            report = self._ctx._report(results, group.record)
        except DeliveryError as exc:  # every post failed: the endpoint itself is down
            return exc
        if report.too_large and group.record is not None:
            sender = group.record.connection_id
            notice = _post_safely(self._ctx.connections, sender, _FANOUT_TOO_LARGE_FRAME)
            self._ctx._account(notice, group.record)
            if notice.outcome is Outcome.FAILED:
                return DeliveryError({sender: _why(notice)})
        return None


def _post_safely(client: ConnectionsClient, connection_id: str, data: bytes) -> PostResult:
    """``client.post``, with anything it raises (a bug, no credentials) as a failed post."""
    try:
        return client.post(connection_id, data)
    except Exception as exc:
        return PostResult(connection_id, Outcome.FAILED, 1, 0, type(exc).__name__, now_ms())


def _encode(payload: Mapping[str, Any]) -> bytes:
    return orjson.dumps(payload)


def _why(result: PostResult) -> str:
    return f"HTTP {result.status} {result.error_code}".strip()


def forget_pruned() -> None:
    """Clear the per-container prune memory (tests)."""
    _pruned.clear()
