"""One Lambda invocation (one batch): its deadline, its memo and its reply sink.

:func:`~.batch.process_batch` starts one per batch (``HandlerContext.begin``), charges every post
to the record being handled, and settles the invocation when the batch has run:

- ``reply``/``error`` queue the post and return at once; the :class:`~.replies.ReplySink` posts
  the batch's replies concurrently across connections and in order per connection. A reply
  that fails for good fails its record, and the connection's later replies of the batch are not
  sent (their records fail too), so a retry redelivers them in order. 413 becomes a
  ``payload_too_large`` error frame to the sender; 410 prunes the connection (once per
  container, by the ``on_gone`` callback) and is not a failure.
- ``fanout`` queues one post per recipient on the same per-connection FIFOs (so a member gets the
  batch's messages in stream order). A recipient's failure is logged, not retried; only a
  fan-out whose every post failed fails its record (the endpoint itself is down), and then the
  undo callbacks registered for that record run (e.g. idempotency forgets the frame, so the
  retry delivers it instead of replaying it as a duplicate). When a recipient answered 413 the
  sender gets a ``payload_too_large`` error frame when the batch ends. The returned
  :class:`FanoutReport` is filled in when the batch settles.
- The deadline (the invocation's remaining time less 10 %, at least 1 s) is passed to every
  post: none retries past it (it fails with ``DeadlineExceeded``), so the batch answers with a
  partial batch response before Lambda's timeout.
- Reply observers (``observe_replies``) see every reply and error frame queued while they are
  registered: how idempotency stores the replies it replays for a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import observability as obs
from .connections import ConnectionsClient, Outcome, PostResult
from .envelope import Envelope
from .exceptions import DeliveryError, PipelineRuntimeError
from .replies import GONE, Post, ReplySink, error_frame, now_ms

ReplyObserver = Callable[[Envelope, Mapping[str, Any]], None]

FANOUT_TOO_LARGE_FRAME = orjson.dumps(error_frame(
    "payload_too_large", "the message is too large to deliver"))


def invocation_deadline(lambda_context: Any) -> float | None:
    """When posts must stop retrying: the invocation's remaining time less a safety margin
    (10 %, at least 1 s) for settling and answering; None without a Lambda context."""
    remaining_ms = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return None
    remaining = float(remaining_ms()) / 1000.0
    return time.monotonic() + remaining - max(1.0, remaining * 0.1)


@dataclass
class FanoutReport:
    """One fan-out: the posts queued and, once its batch has settled, their outcomes."""

    queued: int = 0
    delivered: int = 0
    gone: int = 0
    too_large: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    settled: bool = False

    @property
    def attempted(self) -> int:
        return self.delivered + self.gone + self.too_large + len(self.failed)


@dataclass(eq=False)
class _Fanout:
    record: Envelope | None
    tag: Any
    report: FanoutReport
    posts: list[Post] = field(default_factory=list)


class Invocation:
    """The state of one invocation; its methods are called on the invocation's thread."""

    def __init__(
        self,
        *,
        connections: Callable[[], ConnectionsClient],
        on_gone: Callable[[str], object],
        logger: Any = obs.logger,
        deadline: float | None = None,
        lambda_context: Any = None,
    ) -> None:
        self.deadline = deadline
        self.lambda_context = lambda_context
        self.started_ms = now_ms()
        # What a handler may remember for the rest of the batch (e.g. a room's members).
        self.memo: dict[Any, Any] = {}
        self.sink = ReplySink(connections, deadline)
        self.logger = logger
        self._on_gone = on_gone
        self._tag: Any = None
        self._observers: list[ReplyObserver] = []
        self._fanouts: list[_Fanout] = []
        self._undo: dict[Any, list[Callable[[], None]]] = {}
        self._ended = False

    def charge_to(self, tag: Any) -> None:
        """Charge the posts queued from now on to ``tag`` (the batch's current record)."""
        self._tag = tag

    def reply(self, record: Envelope, payload: Mapping[str, Any]) -> None:
        """Queue ``payload`` to the record's sender (settled when the batch ends)."""
        self._check_open()
        if self._observers:
            for observer in list(self._observers):
                observer(record, payload)
        self.sink.put(Post(record.connection_id, orjson.dumps(payload), record, self._tag,
                           is_error=payload.get("action") == "error"))

    def fanout(self, connection_ids: Iterable[str], payload: Mapping[str, Any],
               record: Envelope | None = None) -> FanoutReport:
        """Queue ``payload`` to each connection (once each); the report is filled in when the
        batch settles."""
        self._check_open()
        data = orjson.dumps(payload)
        group = _Fanout(record, self._tag, FanoutReport())
        for cid in dict.fromkeys(connection_ids):
            post = Post(cid, data, record, self._tag, in_fanout=True)
            group.posts.append(post)
            self.sink.put(post)
        group.report.queued = len(group.posts)
        if group.posts:
            self._fanouts.append(group)
        else:
            group.report.settled = True
        return group.report

    @contextmanager
    def observe_replies(self, observer: ReplyObserver) -> Iterator[None]:
        """Call ``observer(record, payload)`` for each reply queued inside the ``with``."""
        self._observers.append(observer)
        try:
            yield
        finally:
            self._observers.remove(observer)

    def on_fanout_failure(self, undo: Callable[[], None]) -> None:
        """Call ``undo`` (once, at settle) if a fan-out of the current record fails it."""
        self._undo.setdefault(self._tag, []).append(undo)

    def settle(self) -> list[tuple[Any, DeliveryError]]:
        """Wait for every post, account them; the tags whose records failed, in order."""
        self._ended = True
        failed: list[tuple[Any, DeliveryError]] = []
        for post in self.sink.wait():
            if post.in_fanout or post.skipped == GONE:
                continue  # fan-outs below; a gone connection is not a failure
            if post.skipped:
                failed.append((post.tag, DeliveryError(
                    {post.connection_id: "not sent: an earlier reply to it failed"})))
                continue
            outcomes = [r for r in (post.result, post.followup) if r is not None]
            for result in outcomes:
                self._account(result, post.record)
            bad = [r for r in outcomes if r.outcome is Outcome.FAILED]
            if bad:
                failed.append((post.tag, DeliveryError({post.connection_id: _why(bad[0])})))
        for group in self._fanouts:
            error = self._settle_fanout(group)
            if error is not None:
                failed.append((group.tag, error))
                for undo in self._undo.pop(group.tag, ()):
                    try:
                        undo()
                    except Exception:  # the record still fails; log what could not be undone
                        self.logger.exception("undo after a failed fan-out failed")
        self._fanouts, self._undo = [], {}
        return failed

    def _settle_fanout(self, group: _Fanout) -> DeliveryError | None:
        """Fill in the fan-out's report; its record's error, if any."""
        report = group.report
        for post in group.posts:
            result = post.result
            if result is None:  # not sent: the recipient answered 410 earlier in the batch
                report.gone += 1
                continue
            self._account(result, group.record)
            if result.outcome is Outcome.DELIVERED:
                report.delivered += 1
            elif result.outcome is Outcome.GONE:
                report.gone += 1
            elif result.outcome is Outcome.TOO_LARGE:
                report.too_large += 1
            else:
                report.failed[result.connection_id] = _why(result)
        report.settled = True
        if report.failed:
            self.logger.error("fan-out posts failed", extra={"failed": report.failed,
                                                             "delivered": report.delivered})
            if len(report.failed) == report.attempted:
                return DeliveryError(report.failed)
        if report.too_large and group.record is not None and group.record.connection_id:
            sender = group.record.connection_id
            notice = self.sink.send(sender, FANOUT_TOO_LARGE_FRAME)
            self._account(notice, group.record)
            if notice.outcome is Outcome.FAILED:
                return DeliveryError({sender: _why(notice)})
        return None

    def _account(self, result: PostResult, record: Envelope | None) -> None:
        """Metrics of one post; prune a gone connection."""
        if result.attempts > 1:
            obs.count(obs.POST_RETRIES, result.attempts - 1)
        if result.outcome is Outcome.DELIVERED:
            obs.count(obs.POSTS_DELIVERED)
            obs.latency(obs.CONSUMER_TO_POST_MS, result.done_ms - self.started_ms)
            if record is not None and record.event_type != "SERVER":
                obs.latency(obs.GATEWAY_TO_POST_MS, result.done_ms - record.request_time_epoch)
        elif result.outcome is Outcome.GONE:
            obs.count(obs.POSTS_GONE)
            self._on_gone(result.connection_id)
        elif result.outcome is Outcome.TOO_LARGE:
            obs.count(obs.POSTS_TOO_LARGE)
        else:
            obs.count(obs.POSTS_FAILED)

    def _check_open(self) -> None:
        if self._ended:
            raise PipelineRuntimeError("this invocation has settled: post from a record handler")


def _why(result: PostResult) -> str:
    return f"HTTP {result.status} {result.error_code}".strip()
