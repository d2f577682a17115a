"""An in-memory :class:`ShardSource` (one stream, N shards): for the engine's tests and bench.

A thin use of the twin's one Kinesis implementation: a :class:`~pipeline.local.kinesis.
KinesisBackend` of its own (no HTTP) read through the twin's own
:class:`~pipeline.local.shard_source.KinesisShardSource`, so the tests see the twin's hash key
ranges, sequence numbers and wake-ups. ``put`` is synchronous and wakes waiting readers at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipeline.aws.arns import KinesisSourceArn, consumer_arn
from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.kinesis import KinesisBackend
from pipeline.local.kinesis.shards import hash_key_of
from pipeline.local.shard_source import KinesisShardSource

from .interfaces import StoredRecord


class MemoryStream(KinesisShardSource):
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
        self.backend = KinesisBackend(region, account, clock=clock)
        self.stream = self.backend.create_stream(name, shards)
        self.stream_arn = self.stream.arn
        super().__init__(self.backend)

    @property
    def shards(self) -> list[str]:
        """Every shard id (closed parents included), in creation order."""
        return list(self.stream.shards)

    def shard_of(self, partition_key: str) -> str:
        """The open shard a partition key maps to now."""
        return self.stream.shard_for(hash_key_of(partition_key)).shard_id

    def add_shard(self) -> str:
        """SplitShard the widest open shard at its middle: the parent closes, as on AWS; returns
        the upper child, a new shard that new keys route to."""
        parent = max(self.stream.open_shards, key=lambda s: s.ending_hash - s.starting_hash)
        middle = (parent.starting_hash + parent.ending_hash + 1) // 2
        return self.backend.split_shard(self.stream, parent.shard_id, middle)[1].shard_id

    def consumer_arn(self, consumer: str) -> str:
        return consumer_arn(self.stream_arn, consumer, 1700000000)

    def put(
        self, partition_key: str, data: bytes, *, arrival: float | None = None
    ) -> tuple[str, StoredRecord]:
        """Append a record; returns its shard id and the stored record."""
        record, shard = self.backend.put_record(self.stream, partition_key, data,
                                                arrival=arrival)
        return shard.shard_id, record

    def stream_arn_of(self, event_source_arn: str) -> str:
        if KinesisSourceArn.parse(event_source_arn).stream_arn == self.stream_arn:
            return self.stream_arn
        raise KeyError(f"unknown event source {event_source_arn}")
