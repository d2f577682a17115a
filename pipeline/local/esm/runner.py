"""The asyncio layer: one reader per shard, ``ParallelizationFactor`` lanes per shard.

The reader waits on the source (event-driven, no polling interval), filters, and routes each
record to its lane by partition key; a lane batches, invokes, and applies the pure decisions of
:mod:`.policy`. Lanes of one shard run concurrently; within a lane one batch is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from pipeline.aws.arns import KinesisSourceArn
from pipeline.aws.events import (
    EventContext,
    arn_region_account,
    failure_record,
    function_arn,
    kinesis_event,
)
from pipeline.aws.filters import metadata_keys, record_filter
from pipeline.aws.limits import KINESIS_GET_RECORDS_MAX, REGION

from .batching import Batcher, lane_of
from .canary import Canary
from .config import MappingConfig
from .interfaces import FailureSink, Invoker, InvokeResult, ShardSource, StoredRecord
from .policy import RECORD_AGE_EXCEEDED, Discard, WorkItem, classify, decide, split_expired

log = logging.getLogger(__name__)

READ_LIMIT = KINESIS_GET_RECORDS_MAX
IDLE_WAIT_S = 1.0  # upper bound of one wait_for_records; records wake the reader earlier


@dataclass
class RunnerStats:
    """Counters of one mapping (all shards), for logs, tests and benchmarks."""

    records_read: int = 0
    records_filtered_out: int = 0
    records_processed: int = 0
    invocations: int = 0
    function_errors: int = 0
    records_discarded: int = 0
    failure_messages_sent: int = 0


class EventSourceMappingRunner:
    """Runs one event source mapping against a stream until stopped."""

    def __init__(
        self,
        config: MappingConfig,
        source: ShardSource,
        invoker: Invoker,
        sink: FailureSink,
        *,
        region: str = REGION,
        clock: Callable[[], float] = time.time,
        invoke_identity_arn: str | None = None,
        retry_backoff_s: float = 0.1,
        max_backoff_s: float = 2.0,
        shard_refresh_s: float = 5.0,
        canary: Canary | None = None,
    ) -> None:
        self.config = config
        self.canary = canary  # start-up's canary records: read, reported, never delivered
        self.label = f"{config.function_name} ({config.uuid})"  # what the logs call it
        self.read_error: str | None = None  # the last failure of a reader, until all recover
        self.failing_readers: set[str] = set()  # shards whose reader fails right now
        self.stats = RunnerStats()
        self._source = source
        self._invoker = invoker
        self._sink = sink
        self._region, self._account = arn_region_account(config.event_source_arn, region=region)
        self._function_arn = function_arn(
            config.function_name, region=self._region, account=self._account
        )
        self._identity = invoke_identity_arn or (
            f"arn:aws:iam::{self._account}:role/{self._function_arn.split(':')[-1]}-role"
        )
        self._clock = clock
        self._backoff_s = retry_backoff_s
        self._max_backoff_s = max_backoff_s
        self._shard_refresh_s = shard_refresh_s
        self._tasks: list[asyncio.Task[None]] = []
        self._shards: dict[str, _Shard] = {}

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    @property
    def shard_ids(self) -> list[str]:
        """The shards this mapping reads (after :meth:`start`)."""
        return list(self._shards)

    async def start(self) -> None:
        """Position a reader on every shard (per ``StartingPosition``) and start; no-op when the
        mapping is disabled or already running."""
        if not self.config.enabled or self._tasks:
            return
        if self.config.tumbling_window_s:
            log.warning("%s: TumblingWindowInSeconds is not emulated", self.config.uuid)
        for pattern in self.config.filters:
            if keys := metadata_keys(pattern):
                log.info("%s: filter on metadata %s (AWS documents data-only Kinesis filters)",
                         self.config.uuid, sorted(keys))
        stream_arn = self._source.stream_arn_of(self.config.event_source_arn)
        for shard_id in self._source.shard_ids(stream_arn):
            self._start_shard(stream_arn, shard_id, initial=True)
        self._tasks.append(asyncio.create_task(self._discover(stream_arn), name="esm-discover"))

    def _start_shard(self, stream_arn: str, shard_id: str, *, initial: bool) -> None:
        ctx = EventContext(shard_id, stream_arn, self._region, self._identity)
        shard = _Shard(self, ctx)
        if initial:
            shard.position_at_start()
        # else: a shard born after the start (resharding) is read from its beginning
        self._shards[shard_id] = shard
        self._tasks.append(asyncio.create_task(shard.read_loop(), name=f"esm-read-{shard_id}"))
        for lane in shard.lanes:
            self._tasks.append(asyncio.create_task(lane.run(), name=f"esm-lane-{shard_id}"))

    async def _discover(self, stream_arn: str) -> None:
        """Pick up shards created by resharding. (Lambda finishes a parent shard before its
        children; the source does not expose parentage, so the twin reads them concurrently.)"""
        while True:
            await asyncio.sleep(self._shard_refresh_s)  # a slow control-plane poll, not the data path
            try:
                shard_ids = self._source.shard_ids(stream_arn)
            except Exception:
                log.exception("%s: listing shards failed", self.config.uuid)
                continue
            for shard_id in shard_ids:
                if shard_id not in self._shards:
                    self._start_shard(stream_arn, shard_id, initial=False)

    def update(self, config: MappingConfig) -> None:
        """``UpdateEventSourceMapping`` of batching, retries, filters and the destination: the
        readers keep their positions and the lanes their records; the next batch uses the new
        settings. (A new function, source, position or ParallelizationFactor: a new runner.)"""
        self.config = config
        for shard in self._shards.values():
            shard.high_water = max(4 * config.batch_size, 1000)
            for lane in shard.lanes:
                lane.batcher.batch_size = config.batch_size
                lane.batcher.window_s = config.maximum_batching_window_s
                lane.arrived.set()  # a lane waiting on the old window re-decides now

    async def stop(self) -> None:
        """Cancel readers and lanes (an in-flight invocation is abandoned) and wait for them."""
        tasks, self._tasks = self._tasks, []
        self._shards.clear()
        pending = set(tasks)
        for _ in range(50):  # re-cancel: a neighbour's code may swallow one cancellation
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        if pending:
            log.error("%s: %d tasks did not stop", self.config.uuid, len(pending))
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("%s: task %s failed", self.config.uuid, task.get_name(),
                          exc_info=task.exception())

    # --- used by shards and lanes ---------------------------------------------------------

    async def _invoke(self, records: tuple[StoredRecord, ...], ctx: EventContext) -> InvokeResult:
        self.stats.invocations += 1
        try:
            result = await self._invoker.invoke(self.config.function_name,
                                                kinesis_event(records, ctx))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken invoker must not kill the shard: a function error
            log.exception("%s: invoker failed", self.config.uuid)
            result = InvokeResult(False, None, type(exc).__name__, str(exc))
        if not isinstance(result, InvokeResult):
            log.error("%s: invoker returned %r, not an InvokeResult", self.config.uuid, result)
            result = InvokeResult(False, None, "InvalidInvokeResult", repr(result)[:200])
        if not result.ok:
            self.stats.function_errors += 1
        return result

    def _discard(self, discard: Discard, ctx: EventContext, last: InvokeResult | None) -> None:
        self.stats.records_discarded += len(discard.records)
        message = failure_record(
            discard.records, ctx, function_arn=self._function_arn, condition=discard.condition,
            invoke_count=discard.invoke_count, last_result=last, now=self._clock(),
        )
        destination = self.config.on_failure_destination_arn
        if destination is None:
            log.warning("%s: discarded records, no on-failure destination: %s",
                        self.config.uuid, message)
            return
        try:
            self._sink.send(destination, message)
            self.stats.failure_messages_sent += 1
        except Exception:
            log.exception("%s: on-failure destination %s refused: %s",
                          self.config.uuid, destination, message)

    def _backoff(self, retries: int) -> float:
        return float(min(self._max_backoff_s, self._backoff_s * 2 ** min(retries, 10)))


class _Shard:
    """The reader of one shard and its lanes."""

    def __init__(self, runner: EventSourceMappingRunner, ctx: EventContext) -> None:
        self.runner = runner
        self.ctx = ctx
        cfg = runner.config
        self.drained = asyncio.Event()  # set whenever a lane takes a batch (backpressure)
        self.lanes = [_Lane(runner, ctx, self.drained) for _ in range(cfg.parallelization_factor)]
        self.high_water = max(4 * cfg.batch_size, 1000)
        self.after: str | None = None
        self.at_timestamp: float | None = None
        self.fan_out = KinesisSourceArn.parse(cfg.event_source_arn).enhanced_fan_out
        self._filter_of: object = None  # the filter list _filter was read from
        self._filter: Callable[[StoredRecord], bool] = record_filter([])
        self.failures = 0  # consecutive failed reads or waits (logged once)

    def position_at_start(self) -> None:
        cfg, src = self.runner.config, self.runner._source
        if cfg.starting_position == "LATEST":
            self.after = src.latest_sequence(self.ctx.stream_arn, self.ctx.shard_id)
        elif cfg.starting_position == "AT_TIMESTAMP":
            self.at_timestamp = cfg.starting_position_timestamp

    async def read_loop(self) -> None:
        runner, src = self.runner, self.runner._source
        while True:
            backlog = max(len(lane.batcher) for lane in self.lanes)
            while backlog >= self.high_water:  # backpressure: a blocked lane stops the reader
                self.drained.clear()
                await self.drained.wait()
                backlog = max(len(lane.batcher) for lane in self.lanes)
            limit = min(READ_LIMIT, self.high_water - backlog)
            try:
                records = src.read(self.ctx.stream_arn, self.ctx.shard_id,
                                   after_sequence=self.after, at_timestamp=self.at_timestamp,
                                   limit=limit)
            except Exception as exc:
                self._failed("reading", exc)
                await asyncio.sleep(runner._backoff(3))  # back off a failing source
                continue
            self._recovered()
            if not records:
                if self.at_timestamp is not None:
                    # Everything stored is older than the timestamp: continue from the newest.
                    self.at_timestamp = None
                    self.after = src.latest_sequence(self.ctx.stream_arn, self.ctx.shard_id)
                await self._wait(src)
                continue
            self._route(records)
            if len(records) < limit:
                # Read up to the end: wait here instead of reading again to find nothing (the
                # wait returns at once when a record arrived meanwhile).
                await self._wait(src)

    async def _wait(self, src: ShardSource) -> None:
        """Wait for records; the source may skip past those the mapping's filter rejects."""
        runner = self.runner
        # The filter goes with the wait only when the position is a sequence number.
        wanted = self._wanted if runner.config.filters and self.at_timestamp is None else None
        try:
            skipped = await src.wait_for_records(self.ctx.stream_arn, self.ctx.shard_id,
                                                 self.after, IDLE_WAIT_S, wanted)
        except Exception as exc:
            self._failed("waiting on", exc)
            await asyncio.sleep(runner._backoff(3))
            return
        if skipped is not None:  # read and filtered out by the source, for this reader
            self.after = skipped.last_sequence
            runner.stats.records_read += skipped.count
            runner.stats.records_filtered_out += skipped.count

    def _failed(self, doing: str, exc: Exception) -> None:
        """Say once per mapping, in one line, that its readers fail (mapping, shard, error); a
        failure that repeats every back-off is counted, not logged again (traceback: DEBUG)."""
        runner = self.runner
        runner.read_error = f"{doing} {self.ctx.shard_id} failed: {type(exc).__name__}: {exc}"
        self.failures += 1
        if self.failures == 1:
            if not runner.failing_readers:
                log.error("mapping %s: %s (retrying)", runner.label, runner.read_error)
            log.debug("mapping %s: %s", runner.label, runner.read_error, exc_info=exc)
            runner.failing_readers.add(self.ctx.shard_id)

    def _recovered(self) -> None:
        if self.failures:
            runner = self.runner
            runner.failing_readers.discard(self.ctx.shard_id)
            if not runner.failing_readers:
                log.warning("mapping %s: reads again (%s, after %d failed attempts)",
                            runner.label, self.ctx.shard_id, self.failures)
                runner.read_error = None
            self.failures = 0

    def _wanted(self, record: StoredRecord) -> bool:
        """The mapping's filter criteria (no criteria: every record); a canary wakes the reader."""
        canary = self.runner.canary
        if canary is not None and canary.is_canary(record.partition_key):
            return True
        filters = self.runner.config.filters
        if self._filter_of is not filters:  # read once per filter list (an update replaces it)
            self._filter, self._filter_of = record_filter(filters, fan_out=self.fan_out), filters
        return self._filter(record)

    def _route(self, records: list[StoredRecord]) -> None:
        """Filter the records read and hand each to its lane by partition key."""
        runner = self.runner
        self.after, self.at_timestamp = records[-1].sequence_number, None
        now = asyncio.get_running_loop().time()
        canary = runner.canary
        for record in records:
            if canary is not None and canary.is_canary(record.partition_key):
                canary.seen(runner.config.uuid, self.ctx.shard_id)
                continue
            runner.stats.records_read += 1
            if self._wanted(record):
                lane = self.lanes[lane_of(record.partition_key, len(self.lanes))]
                lane.add(record, now)
            else:
                runner.stats.records_filtered_out += 1


class _Lane:
    """One ordered stream of batches: fresh records, plus retries/splits that go first."""

    def __init__(
        self, runner: EventSourceMappingRunner, ctx: EventContext, drained: asyncio.Event
    ) -> None:
        self.runner = runner
        self.ctx = ctx
        self.drained = drained
        self.batcher = Batcher(runner.config.batch_size, runner.config.maximum_batching_window_s)
        self.pending: deque[WorkItem] = deque()
        self.arrived = asyncio.Event()

    def add(self, record: StoredRecord, now: float) -> None:
        self.batcher.add(record, now)
        self.arrived.set()

    async def run(self) -> None:
        while True:
            item = self.pending.popleft() if self.pending else await self._next_batch()
            try:
                await self._process(item)
            except Exception:  # an engine bug must not silently stop the shard: retry later
                log.exception("%s: processing a batch failed", self.runner.config.uuid)
                self.pending.appendleft(item)
                await asyncio.sleep(self.runner._backoff(5))

    async def _next_batch(self) -> WorkItem:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            wait = self.batcher.wait_time(now)
            if wait == 0.0:
                batch = self.batcher.take(now)
                self.drained.set()
                return WorkItem(tuple(batch))
            self.arrived.clear()
            if wait is None:
                await self.arrived.wait()
                continue
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.arrived.wait()

    async def _process(self, item: WorkItem) -> None:
        runner = self.runner
        expired, remaining = split_expired(item, runner._clock(), runner.config.maximum_record_age_s)
        if expired:
            # Records that expire while being retried report their invocations so far and the
            # last one's result; records never invoked report 0 and no function error.
            runner._discard(Discard(expired, RECORD_AGE_EXCEEDED, item.invokes), self.ctx,
                            item.last_result)
        if remaining is None:
            return
        item = replace(remaining, invokes=remaining.invokes + 1)
        result = await runner._invoke(item.records, self.ctx)
        outcome = classify(result, item.records,
                           report_batch_item_failures=runner.config.report_batch_item_failures)
        decision = decide(item, outcome, runner.config)
        runner.stats.records_processed += len(decision.done)
        if decision.discard is not None:
            runner._discard(decision.discard, self.ctx, result)
        self.pending.extendleft(reversed([replace(w, last_result=result) for w in decision.retry]))
        if decision.backoff and decision.retry:
            # A deliberate retry delay (Lambda backs off between retries), not a wait for work.
            await asyncio.sleep(runner._backoff(decision.retry[0].retries - 1))
