"""What a record handler gets besides its record: replies, fan-out, roster, logs, metrics.

``HandlerContext`` holds what a container shares across invocations (the @connections client,
the roster, the logger) and the current :class:`~.invocation.Invocation`, which
:func:`~.batch.process_batch` starts for each batch (:meth:`HandlerContext.begin`). Its
``reply``/``error``/``fanout``/``memo`` act on that invocation; the documented behaviour
(per-connection FIFO, 410 pruning, 413 error frames, failed replies failing their records,
the fan-out rules) is described in :mod:`.invocation`.

410 prunes the connection from the roster once per container: a connection pruned here is
remembered (the last 10,000), so a later 410 for it costs no DynamoDB call. The members left in
its rooms hear of it as of any leave: one ``left`` presence delta per room (reason ``gone``) put on
the stream, which the ``presence`` consumer coalesces into its window's frame for rooms of at
most ``presenceMaxMembers`` (docs/contracts.md "Presence deltas"); nothing is posted from here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.names import CONNECTIONS_ENDPOINT_VARIABLE

from . import observability as obs
from .connections import ConnectionsClient, connections_client
from .container import container
from .envelope import Envelope
from .exceptions import PipelineRuntimeError, RosterError
from .fanout import FanoutShape, Page, PageWriter, page_writer, plan_pages
from .invocation import FanoutReport, Invocation, ReplyObserver, invocation_deadline
from .presence import delta_envelope, delta_key
from .ratelimit import share_rate
from .replies import error_frame, now_ms
from .roster import Roster, roster
from .shardcount import open_shard_count

__all__ = ["FanoutReport", "HandlerContext", "error_frame", "now_ms"]


@dataclass
class HandlerContext:
    """The container's clients and the current invocation, for record handlers."""

    connections_client: ConnectionsClient | None = None
    roster_client: Roster | None = None
    logger: Any = obs.logger
    page_writer_client: PageWriter | None = None
    fanout_shape: FanoutShape | None = None  # default: from the environment (the stack's)
    # The stream's open shards at the last begin() (None: not read; see .shardcount).
    open_shards: int | None = None
    _invocation: Invocation | None = field(default=None, init=False, repr=False)

    def begin(self, lambda_context: Any = None, *,
              deadline: float | None = None) -> Invocation:
        """Start the next invocation (``process_batch`` does, once per batch). ``deadline``
        (``time.monotonic()``) defaults to the one of ``lambda_context``'s remaining time."""
        if deadline is None:
            deadline = invocation_deadline(lambda_context)
        self._follow_shard_count()
        self._invocation = Invocation(
            connections=lambda: self.connections, on_gone=self.prune, logger=self.logger,
            deadline=deadline, lambda_context=lambda_context)
        return self._invocation

    def _follow_shard_count(self) -> None:
        """Size this container's @connections rate and the fan-out lanes from the stream's
        open shard count (cached: at most one DescribeStreamSummary per interval)."""
        counter = open_shard_count()
        if counter is None:
            return
        self.open_shards = counter.current()
        rate = share_rate(self.open_shards)
        if rate is None:
            return
        if self.connections_client is None and not os.environ.get(CONNECTIONS_ENDPOINT_VARIABLE):
            return
        limiter = self.connections.limiter
        if limiter is not None:
            limiter.set_rate(rate)

    @property
    def invocation(self) -> Invocation:
        """The current (or last) invocation."""
        if self._invocation is None:
            raise PipelineRuntimeError(
                "no invocation: a HandlerContext is used inside process_batch (or after begin())")
        return self._invocation

    @property
    def lambda_context(self) -> Any:
        return self.invocation.lambda_context

    @property
    def started_ms(self) -> int:
        """When the invocation started (epoch ms)."""
        return self.invocation.started_ms

    @property
    def memo(self) -> dict[Any, Any]:
        """What a handler may remember for the rest of the batch; empty at each batch."""
        return self.invocation.memo

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

    def reply(self, record: Envelope, payload: Mapping[str, Any]) -> None:
        """Send ``payload`` to the record's sender, after the batch's earlier replies to it.
        Gone -> pruned; 413 -> a ``payload_too_large`` error frame instead; still failing after
        the retries -> the record fails (and is retried), when the batch ends."""
        self.invocation.reply(record, payload)

    def error(self, record: Envelope, code: str, message: str, **extra: Any) -> None:
        """Send an error frame to the record's sender."""
        self.reply(record, error_frame(code, message, **extra))

    def fanout(
        self, connection_ids: Iterable[str], payload: Mapping[str, Any],
        record: Envelope | None = None,
    ) -> FanoutReport:
        """Send ``payload`` to many connections; prune the gone ones.

        Individual failures (after retries) are logged and counted, not retried, so one bad
        connection does not replay the message to everyone; when *every* post failed the
        endpoint itself is down and the record fails. The report is filled in when the batch
        ends (``queued`` at once).
        """
        return self.invocation.fanout(connection_ids, payload, record)

    def fanout_pages(self, room_key: str, members: Iterable[str], payload: Mapping[str, Any],
                     record: Envelope | None = None) -> list[Page]:
        """Send ``payload`` to many connections through the fan-out tier: pages of recipients
        written to the stream now (:mod:`.fanout`), posted by the ``fanout`` consumer. Raises
        :class:`~.fanout.FanoutError` (the record fails) when the stream keeps refusing them."""
        shape = self.fanout_shape or FanoutShape.from_env()
        if self.fanout_shape is None and self.open_shards is not None:
            # the stream's lanes now (an on-demand stream grows): see docs/fidelity.md for
            # the order a member may see across the moment the count changes
            shape = replace(shape, shards=self.open_shards)
        sent = record.request_time_epoch if record is not None else now_ms()
        pages: list[Page] = []
        # Pages go out while the room is still being read (a chunk fills one page per lane),
        # so a 100,000-member room starts posting after its first Query page, not its last.
        chunk = shape.page_size * shape.lanes
        for members_chunk in _chunks(members, chunk):
            planned = plan_pages(room_key, members_chunk, shape)
            (self.page_writer_client or page_writer()).write(planned, payload,
                                                             request_time_ms=sent)
            pages.extend(planned)
        return pages

    def put_records(self, records: list[tuple[str, bytes]]) -> None:
        """Put ``(partition key, data)`` records on the stream (``STREAM_NAME``) now."""
        (self.page_writer_client or page_writer()).put(records)

    def send_to_user(self, principal: str, payload: Mapping[str, Any],
                     record: Envelope | None = None) -> FanoutReport:
        """Send ``payload`` to every connection of ``principal`` (the roster's ``byPrincipal``
        index), like :meth:`fanout`."""
        return self.fanout(self.roster.connections_of(principal), payload, record)

    def observe_replies(self, observer: ReplyObserver) -> AbstractContextManager[None]:
        """``with ctx.observe_replies(fn):`` calls ``fn(record, payload)`` for each reply."""
        return self.invocation.observe_replies(observer)

    def on_fanout_failure(self, undo: Callable[[], None]) -> None:
        """Call ``undo`` when the batch ends if a fan-out of the current record fails it."""
        self.invocation.on_fanout_failure(undo)

    def prune(self, connection_id: str) -> bool:
        """Remove every roster item of a gone connection, once per container."""
        if container().was_pruned(connection_id) or not self.has_roster:
            return False
        try:
            removed = self.roster.remove_connection_rooms(connection_id)
        except RosterError as exc:  # the TTL still cleans it up eventually
            self.logger.warning("prune failed", extra={"connectionId": connection_id,
                                                       "error": str(exc)})
            return False
        container().remember_pruned(connection_id)
        obs.count(obs.CONNECTIONS_PRUNED)
        self.logger.info("pruned gone connection",
                         extra={"connectionId": connection_id, "items": removed.items})
        self._announce_gone(removed.rooms, connection_id)
        return True

    def _announce_gone(self, rooms: Iterable[str], connection_id: str) -> None:
        """One ``left`` (reason ``gone``) presence delta per room the pruned connection was in,
        in one PutRecords, like a chat leave's: best effort (the batch is settling; the
        members' next ``who`` is right either way)."""
        member = {"connectionId": connection_id, "reason": "gone"}
        sent = now_ms()
        deltas = [(delta_key(room), delta_envelope(room, "left", member, request_time_ms=sent))
                  for room in rooms]
        if not deltas:
            return
        try:
            self.put_records(deltas)
        except PipelineRuntimeError as exc:  # FanoutError, or no STREAM_NAME
            self.logger.warning("presence after prune skipped",
                                extra={"rooms": len(deltas), "error": str(exc)})

def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Distinct items in lists of ``size`` (a member listed twice is sent to once)."""
    seen: set[str] = set()
    chunk: list[str] = []
    for item in items:
        if item in seen:
            continue
        seen.add(item)
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

