"""What the engine needs from the rest of the twin: records in, invocations and failures out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.aws.events import InvokeResult as InvokeResult  # re-exported: the Invoker's answer
from pipeline.aws.kinesis import Record

# One Kinesis record as stored on a shard (an aggregated KPL record is one record): the twin's
# Kinesis model stores exactly what the engine reads (sequence_number, partition_key, data,
# approximate_arrival_timestamp in epoch seconds, explicit_hash_key), frozen and decoded once.
StoredRecord = Record


class ShardSource(Protocol):
    """Read access to the stream; the twin implements it over its Kinesis model
    (``pipeline.local.shard_source.KinesisShardSource``; ``memory.MemoryStream`` in tests)."""

    def stream_arn_of(self, event_source_arn: str) -> str:
        """The stream ARN of a stream ARN (itself) or of an enhanced fan-out consumer ARN."""
        ...

    def shard_ids(self, stream_arn: str) -> list[str]:
        """The open shards of the stream, in order."""
        ...

    def read(
        self,
        stream_arn: str,
        shard_id: str,
        *,
        after_sequence: str | None,
        at_timestamp: float | None,
        limit: int,
    ) -> list[StoredRecord]:
        """Up to ``limit`` records in sequence order, strictly after ``after_sequence``; else
        from ``at_timestamp``; with both None, from TRIM_HORIZON."""
        ...

    def latest_sequence(self, stream_arn: str, shard_id: str) -> str | None:
        """The sequence number of the newest record on the shard, None if it is empty."""
        ...

    async def wait_for_records(
        self, stream_arn: str, shard_id: str, after_sequence: str | None, timeout_s: float,
        wanted: Callable[[StoredRecord], bool] | None = None,
    ) -> Skipped | None:
        """Return as soon as a record after ``after_sequence`` exists, or after ``timeout_s``.

        With ``wanted`` (the mapping's filter), a source may keep waiting past records it
        rejects and answer how far it skipped; ``None``: nothing skipped (the reader reads and
        filters every record itself, which is always correct).
        """
        ...


@dataclass(frozen=True)
class Skipped:
    """Records after the reader's position up to ``last_sequence`` (``count`` of them) that the
    mapping's filter rejects: the reader resumes after ``last_sequence``."""

    last_sequence: str
    count: int


class Invoker(Protocol):
    """Invokes a function synchronously (RequestResponse) with one event."""

    async def invoke(self, function_name: str, event: dict[str, Any]) -> InvokeResult: ...


class FailureSink(Protocol):
    """The on-failure destination: SQS ``SendMessage`` with ``message`` as the JSON body."""

    def send(self, destination_arn: str, message: dict[str, Any]) -> None: ...
