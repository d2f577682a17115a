"""One shard: its hash key range, its records with AWS-shaped sequence numbers, its write limit.

Sans-I/O (the clock is the caller's). Appends are O(1) and reads O(log n + k) (a sorted list of
sequence numbers beside the records); a per-shard lock makes numbering atomic across the HTTP
server's threads and the gateway's loop.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Callable
from hashlib import md5

from pipeline.aws.kinesis import Record as Record  # re-exported: the shard stores these
from pipeline.aws.limits import KINESIS_BYTES_PER_SECOND, KINESIS_RECORDS_PER_SECOND

MAX_HASH_KEY = 2**128 - 1


# Sequence numbers as AWS shapes them: 56-digit decimal strings, strictly increasing per shard,
# not consecutive ("Sequence numbers for the same partition key generally increase over time";
# compare them as numbers, never assume +1):
# https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html
# https://docs.aws.amazon.com/streams/latest/dev/key-concepts.html#sequence-number
# A shard's first number is 49..., then the shard's creation time (ms) and its index, like the
# "49590338271490256608559692538361571095921575989136588898" of AWS's Lambda event samples.
SEQUENCE_DIGITS = 56
SEQUENCE_STRIDE = 1_000_003  # gap between consecutive records of a shard (not 1, as on AWS)
_SEQUENCE_PREFIX = 49 * 10**54


def first_sequence(shard_index: int, created_ms: int) -> int:
    """The sequence number of a shard's first record (56 digits, see above)."""
    return _SEQUENCE_PREFIX + created_ms * 10**36 + (shard_index % 10**6) * 10**30 + 1


def hash_key_of(partition_key: str) -> int:
    """The 128-bit hash key Kinesis maps a partition key with (MD5, big-endian)."""
    return int.from_bytes(md5(partition_key.encode("utf-8"), usedforsecurity=False).digest(),
                          "big")


def shard_id_of(index: int) -> str:
    return f"shardId-{index:012d}"


class ShardLimiter:
    """Sliding one-second window over a shard's writes (records and bytes)."""

    __slots__ = ("_bytes", "_window")

    def __init__(self) -> None:
        self._window: deque[tuple[float, int]] = deque()
        self._bytes = 0

    def admit(self, now: float, size: int) -> bool:
        """Record the write and return True if it fits in the last second, else False."""
        window = self._window
        while window and window[0][0] <= now - 1.0:
            self._bytes -= window.popleft()[1]
        if (len(window) + 1 > KINESIS_RECORDS_PER_SECOND
                or self._bytes + size > KINESIS_BYTES_PER_SECOND):
            return False
        window.append((now, size))
        self._bytes += size
        return True


class Shard:
    """A shard: inclusive hash key range ``[starting_hash, ending_hash]`` and its records."""

    __slots__ = ("_keys", "_lock", "_next", "_records", "adjacent_parent_shard_id",
                 "created", "ending_hash", "ending_sequence", "index", "limiter",
                 "parent_shard_id", "shard_id", "starting_hash", "starting_sequence")

    def __init__(self, index: int, starting_hash: int, ending_hash: int, created: float, *,
                 parent_shard_id: str | None = None,
                 adjacent_parent_shard_id: str | None = None) -> None:
        self.index = index
        self.shard_id = shard_id_of(index)
        self.starting_hash, self.ending_hash = starting_hash, ending_hash
        self.created = created
        self.parent_shard_id = parent_shard_id
        self.adjacent_parent_shard_id = adjacent_parent_shard_id
        self.starting_sequence = first_sequence(index, int(created * 1000))
        self.ending_sequence: int | None = None  # set when the shard is closed (resharding)
        self.limiter = ShardLimiter()
        self._records: list[Record] = []
        self._keys: list[int] = []  # the records' sequence numbers, as ints, in order
        self._next = self.starting_sequence
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self.ending_sequence is None

    def covers(self, hash_key: int) -> bool:
        """AWS hash key ranges are inclusive: EndingHashKey maps to this shard."""
        return self.starting_hash <= hash_key <= self.ending_hash

    def append(self, partition_key: str, data: bytes, explicit_hash_key: str | None,
               arrival: float) -> Record:
        """Store a record; its sequence number is greater than every earlier one's."""
        with self._lock:
            number = self._next
            self._next = number + SEQUENCE_STRIDE
            record = Record(str(number), partition_key, data, arrival, explicit_hash_key)
            self._records.append(record)  # the record first: a reader bisects the keys
            self._keys.append(number)
        return record

    def close(self) -> None:
        with self._lock:
            self.ending_sequence = self._next - SEQUENCE_STRIDE

    def after(self, after: int, limit: int) -> list[Record]:
        """Up to ``limit`` records with a sequence number > ``after``, in order."""
        keys = self._keys
        start = bisect.bisect_right(keys, after)
        return self._records[start : start + limit]

    def position_at(self, timestamp: float) -> int:
        """The position (a sequence number to read after) of the first record that arrived at
        or after ``timestamp``; the newest position if none did."""
        start = bisect.bisect_left(self._records, timestamp, key=_arrival)
        if start >= len(self._keys):
            return self.last
        return self._keys[start] - 1

    @property
    def last(self) -> int:
        """The newest record's sequence number, else just before the first one's."""
        keys = self._keys
        return keys[-1] if keys else self.starting_sequence - 1

    def newest(self) -> Record | None:
        records = self._records
        return records[-1] if records else None

    def __len__(self) -> int:
        return len(self._keys)


def _arrival(record: Record) -> float:
    return record.approximate_arrival_timestamp


class ShardWatch:
    """A reader waiting on a shard past ``after``, with an optional filter: :meth:`look` says
    whether the records put since are worth waking it for. Sans-I/O (the caller owns the wait).

    Records the filter rejects advance the position and are counted (``skipped``), so a put
    that concerns another consumer costs this reader a filter check, not a wake-up and a read.
    """

    LOOK_LIMIT = 1000  # records looked at per put before waking the reader anyway

    __slots__ = ("after", "shard", "skipped", "wanted")

    def __init__(self, shard: Shard, after: int,
                 wanted: Callable[[Record], bool] | None = None) -> None:
        self.shard, self.after, self.wanted = shard, after, wanted
        self.skipped = 0

    def look(self) -> bool:
        """True when the reader should wake: a wanted record after its position (any record
        without a filter), or more unexamined records than :attr:`LOOK_LIMIT`."""
        wanted = self.wanted
        if wanted is None:
            return self.shard.last > self.after
        keys = self.shard._keys
        last = len(keys) - 1
        if last >= 1 and keys[last - 1] == self.after:
            # the usual put: one record after the position (no bisect, no slice, no int())
            record = self.shard._records[last]
            try:
                if wanted(record):
                    return True
            except Exception:  # the reader filters again, and logs what goes wrong
                return True
            self.after = keys[last]
            self.skipped += 1
            return False
        records = self.shard.after(self.after, self.LOOK_LIMIT)
        for record in records:
            try:
                verdict = wanted(record)
            except Exception:  # the reader filters again, and logs what goes wrong
                verdict = True
            if verdict:
                return True
            self.after = int(record.sequence_number)
            self.skipped += 1
        return len(records) >= self.LOOK_LIMIT
