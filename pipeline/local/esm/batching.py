"""Batching and lane routing, pure: no I/O, the clock is passed in.

A batch is invoked when it holds ``BatchSize`` records, when ``MaximumBatchingWindowInSeconds``
has passed since its first record arrived (0 = at once), or when the next record would push the
invocation payload over Lambda's 6 MB synchronous limit.
https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html#kinesis-polling-and-batching
"""

from __future__ import annotations

import hashlib
from collections import deque

from .interfaces import StoredRecord

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
_PER_RECORD_OVERHEAD = 400  # the JSON around one record in the event (ids, ARNs, keys)


def event_size(record: StoredRecord) -> int:
    """The approximate bytes one record adds to the invocation event (data is base64)."""
    return 4 * ((len(record.data) + 2) // 3) + len(record.partition_key) + _PER_RECORD_OVERHEAD


def lane_of(partition_key: str, lanes: int) -> int:
    """The lane (of ``ParallelizationFactor`` lanes) of a partition key: the key's MD5 hash, as
    Kinesis hashes keys to shards, so one key always lands in one lane and stays in order."""
    if lanes <= 1:
        return 0
    digest = hashlib.md5(partition_key.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest, "big") % lanes


class Batcher:
    """Collects records for one lane and says when a batch is due."""

    def __init__(
        self, batch_size: int, window_s: float, *, max_payload_bytes: int = MAX_PAYLOAD_BYTES
    ) -> None:
        self.batch_size = batch_size
        self.window_s = window_s
        self.max_payload_bytes = max_payload_bytes
        self._records: deque[StoredRecord] = deque()
        self._first_at: float | None = None

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: StoredRecord, now: float) -> None:
        if self._first_at is None:
            self._first_at = now
        self._records.append(record)

    def ready(self, now: float) -> bool:
        """True when a batch should be invoked now."""
        if not self._records or self._first_at is None:
            return False
        return len(self._records) >= self.batch_size or now >= self._first_at + self.window_s

    def wait_time(self, now: float) -> float | None:
        """Seconds until a batch is due (0 = now); None when empty (wait for a record)."""
        if not self._records or self._first_at is None:
            return None
        if self.ready(now):
            return 0.0
        return self._first_at + self.window_s - now

    def take(self, now: float) -> list[StoredRecord]:
        """Remove and return the next batch (at least one record when not empty)."""
        batch: list[StoredRecord] = []
        size = 0
        while self._records and len(batch) < self.batch_size:
            grow = event_size(self._records[0])
            if batch and size + grow > self.max_payload_bytes:
                break
            batch.append(self._records.popleft())
            size += grow
        self._first_at = now if self._records else None
        return batch
