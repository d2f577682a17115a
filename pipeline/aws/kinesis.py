"""A Kinesis record as a shard stores it, and the KPL aggregation format's magic."""

from __future__ import annotations

from dataclasses import dataclass

# https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md
KPL_MAGIC = b"\xf3\x89\x9a\xc2"


def is_aggregated(data: bytes) -> bool:
    """True when raw record data starts with the KPL aggregation magic."""
    return data.startswith(KPL_MAGIC)


@dataclass(frozen=True, slots=True)
class Record:
    """One stored record (an aggregated KPL record is one record). Immutable: every reader of
    the shard (each event source mapping, GetRecords) shares the same object, decoded once."""

    sequence_number: str
    partition_key: str
    data: bytes
    approximate_arrival_timestamp: float  # epoch seconds
    explicit_hash_key: str | None = None
