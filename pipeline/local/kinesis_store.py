"""moto's Kinesis shards, made fit for the twin: O(1) puts, indexed reads, limits, notification.

moto keeps a shard's records in an OrderedDict and finds the last sequence number by copying
every key (O(n) per put) and scans every record on each GetRecords; it maps a partition key to a
shard with ``start <= key < end`` although AWS hash key ranges are inclusive, so an
ExplicitHashKey equal to a shard's EndingHashKey gets a 500. :func:`install` replaces those three
methods in one place (idempotent) and adds, on every put from any path (the gateway's in-process
calls or boto3 over HTTP), the optional per-shard write limits and a notification hook.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable
from hashlib import md5
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.kinesis import models as kinesis_models
from moto.kinesis.exceptions import (
    InvalidArgumentError,
    RecordSizeExceedsLimit,
    TooManyRecords,
    TotalRecordsSizeExceedsLimit,
)

# https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
RECORDS_PER_SECOND = 1000
BYTES_PER_SECOND = 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key
MAX_PARTITION_KEY = 256

LOCK = threading.RLock()  # moto's shards are not safe for concurrent writers
PutListener = Callable[[str, str], None]  # (stream_name, shard_id)
_listeners: list[PutListener] = []
_limits_enabled = False
clock: Callable[[], float] = time.monotonic  # replaceable in tests


class ThroughputExceeded(JsonRESTError):
    """AWS ``ProvisionedThroughputExceededException`` (HTTP 400)."""

    def __init__(self, stream_name: str, shard_id: str) -> None:
        super().__init__(
            "ProvisionedThroughputExceededException",
            f"Rate exceeded for shard {shard_id} in stream {stream_name} under account "
            f"123456789012.",
        )


class ShardLimiter:
    """Sliding one-second window over a shard's writes (records and bytes). Sans-I/O."""

    __slots__ = ("_bytes", "_window")

    def __init__(self) -> None:
        self._window: deque[tuple[float, int]] = deque()
        self._bytes = 0

    def admit(self, now: float, size: int) -> bool:
        """Record the write and return True if it fits in the last second, else False."""
        window = self._window
        while window and window[0][0] <= now - 1.0:
            self._bytes -= window.popleft()[1]
        if len(window) + 1 > RECORDS_PER_SECOND or self._bytes + size > BYTES_PER_SECOND:
            return False
        window.append((now, size))
        self._bytes += size
        return True


def set_limits(enabled: bool) -> None:
    """Turn the per-shard write limits on or off (``--enforce-limits``)."""
    global _limits_enabled
    _limits_enabled = enabled


def add_listener(listener: PutListener) -> None:
    """Call ``listener(stream_name, shard_id)`` after every stored record (from any thread)."""
    _listeners.append(listener)


def remove_listener(listener: PutListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _keys(shard: Any) -> list[int]:
    keys: list[int] | None = shard.__dict__.get("_twin_keys")
    if keys is None or len(keys) != len(shard.records):
        keys = list(shard.records.keys())  # first use, or moto moved records (split/merge)
        shard.__dict__["_twin_keys"] = keys
    return keys


# Sequence numbers as AWS shapes them: 56-digit decimal strings, strictly increasing per shard,
# not consecutive ("Sequence numbers for the same partition key generally increase over time";
# compare them as numbers, never assume +1):
# https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html
# https://docs.aws.amazon.com/streams/latest/dev/key-concepts.html#sequence-number
# A shard's first number is 49..., then the shard's creation time (ms) and its index, like the
# "49590338271490256608559692538361571095921575989136588898" of AWS's Lambda event samples.
# moto keeps them as ints, so its GetRecords, AT_/AFTER_SEQUENCE_NUMBER iterators and the ESM's
# checkpoints compare them numerically, as AWS does.
SEQUENCE_DIGITS = 56
SEQUENCE_STRIDE = 1_000_003  # gap between consecutive records of a shard (not 1, as on AWS)
_SEQUENCE_PREFIX = 49 * 10**54


def first_sequence(shard_index: int, created_ms: int) -> int:
    """The sequence number of a shard's first record (56 digits, see above)."""
    return _SEQUENCE_PREFIX + created_ms * 10**36 + (shard_index % 10**6) * 10**30 + 1


def _shard_put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
    with LOCK:
        keys = _keys(self)
        if keys:
            sequence_number = keys[-1] + SEQUENCE_STRIDE
        else:
            base = self.__dict__.get("_twin_base")
            if base is None:
                base = self.__dict__["_twin_base"] = first_sequence(
                    int(self._shard_id), time.time_ns() // 1_000_000)
            sequence_number = base
        self.records[sequence_number] = kinesis_models.Record(
            partition_key, data, sequence_number, explicit_hash_key
        )
        keys.append(sequence_number)
    return str(sequence_number)


def _shard_get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    with LOCK:
        keys = _keys(self)
        start = bisect.bisect_right(keys, int(last_sequence_id))
        stop = len(keys) if not limit else min(len(keys), start + limit)
        results = [self.records[k] for k in keys[start:stop]]
        newest = self.records[keys[-1]] if keys else None
    if not results:
        return [], int(last_sequence_id), 0
    behind = int((newest.created_at - results[-1].created_at) * 1000) if newest else 0
    return results, results[-1].sequence_number, behind


def records_after(shard: Any, after: int, limit: int) -> list[Any]:
    """Up to ``limit`` records with a sequence number > ``after`` (indexed, O(log n + k))."""
    with LOCK:
        keys = _keys(shard)
        start = bisect.bisect_right(keys, after)
        return [shard.records[k] for k in keys[start : start + limit]]


def last_sequence(shard: Any) -> int:
    with LOCK:
        keys = _keys(shard)
        return keys[-1] if keys else 0


def _get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
    if not isinstance(partition_key, str) or not 1 <= len(partition_key) <= MAX_PARTITION_KEY:
        raise InvalidArgumentError("partition_key")
    if explicit_hash_key:
        try:
            int_key = int(explicit_hash_key)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError("explicit_hash_key") from exc
        if not 0 <= int_key < 2**128:
            raise InvalidArgumentError("explicit_hash_key")
    else:
        int_key = int(md5(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= int_key <= shard.ending_hash:  # inclusive
            return shard
    return None


def _data_size(data: str) -> int:
    # base64 text -> decoded byte count, without decoding
    return len(data) * 3 // 4 - data[-2:].count("=") if data else 0


def _stream_put_record(
    self: Any, partition_key: str, explicit_hash_key: str, data: str
) -> tuple[str, str]:
    shard = _get_shard_for_key(self, partition_key, explicit_hash_key)
    if shard is None:
        raise InvalidArgumentError("explicit_hash_key")
    if _limits_enabled:
        limiter: ShardLimiter | None = shard.__dict__.get("_twin_limiter")
        if limiter is None:
            limiter = shard.__dict__["_twin_limiter"] = ShardLimiter()
        size = _data_size(data) + len(partition_key.encode())
        with LOCK:
            admitted = limiter.admit(clock(), size)
        if not admitted:
            raise ThroughputExceeded(self.stream_name, shard.shard_id)
    sequence_number = shard.put_record(partition_key, data, explicit_hash_key)
    for listener in list(_listeners):
        listener(self.stream_name, shard.shard_id)
    return sequence_number, shard.shard_id


def put_records(stream: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """PutRecords semantics: each record succeeds or fails on its own (throttling per record)."""
    failed = 0
    out: list[dict[str, str]] = []
    for record in records:
        try:
            seq, shard_id = stream.put_record(
                record.get("PartitionKey"), record.get("ExplicitHashKey"), record.get("Data")
            )
        except ThroughputExceeded as exc:
            failed += 1
            out.append({"ErrorCode": exc.error_type, "ErrorMessage": exc.message})
            continue
        out.append({"SequenceNumber": seq, "ShardId": shard_id})
    return {"FailedRecordCount": failed, "Records": out}


def _backend_put_records(
    self: Any, stream_arn: str, stream_name: str, records: list[dict[str, Any]]
) -> dict[str, Any]:
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    if len(records) > 500:
        raise TooManyRecords
    sizes = [_data_size(r.get("Data") or "") + len(r.get("PartitionKey") or "") for r in records]
    if sum(sizes) > 5 * 1024 * 1024:
        raise TotalRecordsSizeExceedsLimit
    over = next((i for i, size in enumerate(sizes) if size > MAX_RECORD_BYTES), None)
    if over is not None:
        raise RecordSizeExceedsLimit(position=over + 1)
    return put_records(stream, records)


def _backend_put_record(
    self: Any, stream_arn: str, stream_name: str, partition_key: str,
    explicit_hash_key: str, data: str,
) -> tuple[str, str]:
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    key_size = len(partition_key.encode()) if isinstance(partition_key, str) else 0
    if _data_size(data or "") + key_size > MAX_RECORD_BYTES:  # also for boto3 over HTTP
        raise JsonRESTError(
            "ValidationException",
            "1 validation error detected: Value at 'data' failed to satisfy constraint: "
            "Member must have length less than or equal to 1048576",
        )
    result: tuple[str, str] = stream.put_record(partition_key, explicit_hash_key, data)
    return result


def install() -> None:
    """Patch moto's Kinesis model in place (idempotent)."""
    if getattr(kinesis_models, "_twin_installed", False):
        return
    kinesis_models.Shard.put_record = _shard_put_record  # type: ignore[method-assign]
    kinesis_models.Shard.get_records = _shard_get_records  # type: ignore[method-assign]
    kinesis_models.Stream.get_shard_for_key = _get_shard_for_key  # type: ignore[method-assign]
    kinesis_models.Stream.put_record = _stream_put_record  # type: ignore[method-assign]
    # CloudWatch metrics per put cost more than the put itself; the twin does not emit them.
    kinesis_models.KinesisBackend.put_record = _backend_put_record  # type: ignore[method-assign]
    kinesis_models.KinesisBackend.put_records = _backend_put_records  # type: ignore[method-assign]
    kinesis_models._twin_installed = True  # type: ignore[attr-defined]
