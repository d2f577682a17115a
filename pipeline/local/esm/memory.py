"""An in-memory :class:`ShardSource` (one stream, N shards): for the engine's tests and bench.

``put`` is synchronous and wakes waiting readers at once, like the twin's moto-backed source.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Callable

from pipeline.local.aws import ACCOUNT_ID, REGION

from .batching import lane_of
from .interfaces import Skipped, StoredRecord


class MemoryStream:
    """A stream with ``shards`` shards; partition keys map to shards by MD5, as in Kinesis."""

    def __init__(
        self,
        name: str = "stream",
        *,
        shards: int = 1,
        region: str = REGION,
        account: str = ACCOUNT_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream_arn = f"arn:aws:kinesis:{region}:{account}:stream/{name}"
        self.shards: dict[str, list[StoredRecord]] = {
            f"shardId-{i:012d}": [] for i in range(shards)
        }
        self._clock = clock
        self._counter = 0
        self._waiters: dict[str, list[asyncio.Future[None]]] = {s: [] for s in self.shards}

    def add_shard(self) -> str:
        """A new shard (as after resharding); new keys may route to it."""
        shard_id = f"shardId-{len(self.shards):012d}"
        self.shards[shard_id] = []
        self._waiters[shard_id] = []
        return shard_id

    def consumer_arn(self, consumer: str) -> str:
        return f"{self.stream_arn}/consumer/{consumer}:1700000000"

    def put(
        self, partition_key: str, data: bytes, *, arrival: float | None = None
    ) -> tuple[str, StoredRecord]:
        """Append a record; returns its shard id and the stored record."""
        shard_id = list(self.shards)[lane_of(partition_key, len(self.shards))]
        self._counter += 1
        record = StoredRecord(
            sequence_number=f"{49_000_000_000_000 + self._counter:056d}",
            partition_key=partition_key,
            data=data,
            approximate_arrival_timestamp=self._clock() if arrival is None else arrival,
        )
        self.shards[shard_id].append(record)
        waiters, self._waiters[shard_id] = self._waiters[shard_id], []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return shard_id, record

    # --- ShardSource ------------------------------------------------------------------------

    def stream_arn_of(self, event_source_arn: str) -> str:
        if event_source_arn == self.stream_arn or event_source_arn.startswith(
            self.stream_arn + "/consumer/"
        ):
            return self.stream_arn
        raise KeyError(f"unknown event source {event_source_arn}")

    def shard_ids(self, stream_arn: str) -> list[str]:
        return list(self.shards)

    def read(
        self,
        stream_arn: str,
        shard_id: str,
        *,
        after_sequence: str | None,
        at_timestamp: float | None,
        limit: int,
    ) -> list[StoredRecord]:
        records = self.shards[shard_id]
        if after_sequence is not None:
            start = bisect.bisect_right(records, after_sequence, key=_sequence)
        elif at_timestamp is not None:
            start = bisect.bisect_left(records, at_timestamp, key=_arrival)
        else:
            start = 0
        return records[start : start + limit]

    def latest_sequence(self, stream_arn: str, shard_id: str) -> str | None:
        records = self.shards[shard_id]
        return records[-1].sequence_number if records else None

    async def wait_for_records(
        self, stream_arn: str, shard_id: str, after_sequence: str | None, timeout_s: float,
        wanted: Callable[[StoredRecord], bool] | None = None,
    ) -> Skipped | None:
        """Wakes on any record (``wanted`` is not used: the reader filters)."""
        records = self.shards[shard_id]
        if records and (after_sequence is None or records[-1].sequence_number > after_sequence):
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[shard_id].append(waiter)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await waiter
        return None


def _sequence(record: StoredRecord) -> str:
    return record.sequence_number


def _arrival(record: StoredRecord) -> float:
    return record.approximate_arrival_timestamp
