"""What an on-failure message names, and which stream records it stands for. No I/O.

Lambda's on-failure record for a Kinesis source holds the batch's shard and sequence-number
range, not its data (``KinesisBatchInfo``: shardId, startSequenceNumber, endSequenceNumber,
batchSize, streamArn...):
https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html
Sequence numbers are opaque decimal strings; they are compared as integers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.aws.filters import record_matches
from pipeline.aws.kinesis import Record
from pipeline.redrive import RedriveError


@dataclass(frozen=True)
class FailedRange:
    """One failed batch: ``batch_size`` records between two sequence numbers of one shard."""

    shard_id: str
    start: str
    end: str
    batch_size: int
    stream_arn: str

    @classmethod
    def from_message(cls, body: str) -> FailedRange:
        """Parse an on-failure message body; :class:`RedriveError` if it is not one."""
        try:
            doc = json.loads(body)
            info = doc["KinesisBatchInfo"]
            shard, start, end = str(info["shardId"]), str(info["startSequenceNumber"]), str(
                info["endSequenceNumber"])
            size, arn = int(info["batchSize"]), str(info.get("streamArn", ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise RedriveError(f"not a Kinesis on-failure record: {exc}") from None
        if not (start.isdigit() and end.isdigit()) or int(start) > int(end):
            raise RedriveError(f"bad sequence-number range {start}..{end}")
        return cls(shard, start, end, size, arn)

    def covers(self, sequence_number: str) -> bool:
        return int(self.start) <= int(sequence_number) <= int(self.end)


@dataclass(frozen=True)
class Selection:
    """The records to re-deliver for a range, and what of it is no longer on the stream."""

    records: list[Record]
    lost_count: int  # records of the batch not found (trimmed past retention)
    lost_from: str | None  # the range's part that is gone: from ...
    lost_to: str | None  # ... to (inclusive; the range's start and the last seq before a hit)

    @property
    def complete(self) -> bool:
        return self.lost_count == 0


def select(failed: FailedRange, shard_records: Iterable[Record],
           filters: Sequence[Mapping[str, Any]], *, fan_out: bool = True) -> Selection:
    """The records of ``failed`` among ``shard_records`` (read from its start on).

    The shard also holds other consumers' records inside the range: only those the mapping's
    filters let through were in the batch. The batch's first record is the range's start; if it
    is not on the shard any more, everything up to the first record still there was trimmed.
    """
    found = [r for r in shard_records
             if failed.covers(r.sequence_number) and record_matches(filters, r, fan_out=fan_out)]
    found.sort(key=lambda r: int(r.sequence_number))
    if not found:
        return Selection([], failed.batch_size, failed.start, failed.end)
    first = found[0].sequence_number
    if first != failed.start:
        # Retention trims the oldest records first: the gone part is the head of the range.
        return Selection(found, max(1, failed.batch_size - len(found)), failed.start,
                         str(int(first) - 1))
    return Selection(found, 0, None, None)
