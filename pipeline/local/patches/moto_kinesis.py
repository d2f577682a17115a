"""moto's Kinesis model, made fit for the twin: O(1) puts, indexed reads, limits, notification.

moto keeps a shard's records in an OrderedDict and finds the last sequence number by copying
every key (O(n) per put) and scans every record on each GetRecords; it maps a partition key to a
shard with ``start <= key < end`` although AWS hash key ranges are inclusive, so an
ExplicitHashKey equal to a shard's EndingHashKey gets a 500. :func:`install` replaces those
methods in one place (idempotent). The backend-level puts ask the :class:`PutHooks` attached to
their backend (a :class:`~pipeline.local.kinesis_store.KinesisStore`) to admit each write and
tell it after each stored record. Per-shard state (the key index, the first sequence number, a
lock) lives on the shard object itself.
"""

from __future__ import annotations

import bisect
import threading
import time
from hashlib import md5
from typing import Any, Protocol

from moto.core.exceptions import JsonRESTError
from moto.kinesis import models as kinesis_models
from moto.kinesis.exceptions import (
    InvalidArgumentError,
    RecordSizeExceedsLimit,
    TooManyRecords,
    TotalRecordsSizeExceedsLimit,
)

from pipeline.local.aws import (
    KINESIS_MAX_PARTITION_KEY,
    KINESIS_MAX_RECORD_BYTES,
    KINESIS_PUT_RECORDS_MAX,
    KINESIS_PUT_RECORDS_MAX_BYTES,
    THROUGHPUT_EXCEEDED,
    VALIDATION,
)
from pipeline.local.patches import require

_HOOKS = "_twin_hooks"  # the attribute of a moto KinesisBackend that holds its PutHooks


class PutHooks(Protocol):
    """What a backend's puts consult (implemented by ``KinesisStore``)."""

    def admit(self, stream_name: str, shard_id: str, size: int) -> None:
        """Raise a ``ProvisionedThroughputExceededException`` when the write does not fit."""

    def stored(self, stream_name: str, shard_id: str) -> None:
        """Called after a record is stored."""


def attach(backend: Any, hooks: PutHooks) -> None:
    """Make *backend*'s puts consult *hooks* (replacing any earlier ones)."""
    backend.__dict__[_HOOKS] = hooks


def _hooks(backend: Any) -> PutHooks | None:
    hooks: PutHooks | None = backend.__dict__.get(_HOOKS)
    return hooks


# --- per-shard index ------------------------------------------------------------------------------

def _lock(shard: Any) -> threading.Lock:
    # dict.setdefault is atomic: two racing writers end up with the same lock.
    lock: threading.Lock = shard.__dict__.setdefault("_twin_lock", threading.Lock())
    return lock


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
    with _lock(self):
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


def _shard_get_records(self: Any, last_sequence_id: str, limit: int | None
                       ) -> tuple[list[Any], int, int]:
    with _lock(self):
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
    with _lock(shard):
        keys = _keys(shard)
        start = bisect.bisect_right(keys, after)
        return [shard.records[k] for k in keys[start : start + limit]]


def last_sequence(shard: Any) -> int:
    """The shard's newest sequence number (0 when it is empty)."""
    with _lock(shard):
        keys = _keys(shard)
        return keys[-1] if keys else 0


def _get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
    if not isinstance(partition_key, str) or not 1 <= len(partition_key) <= KINESIS_MAX_PARTITION_KEY:
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


def data_size(data: str) -> int:
    """Decoded byte count of base64 text, without decoding it."""
    return len(data) * 3 // 4 - data[-2:].count("=") if data else 0


def _put(backend: Any, stream: Any, partition_key: str, explicit_hash_key: str,
         data: str) -> tuple[str, str]:
    shard = _get_shard_for_key(stream, partition_key, explicit_hash_key)
    if shard is None:
        raise InvalidArgumentError("explicit_hash_key")
    hooks = _hooks(backend)
    if hooks is not None:
        hooks.admit(stream.stream_name, shard.shard_id,
                    data_size(data) + len(partition_key.encode()))
    sequence_number = shard.put_record(partition_key, data, explicit_hash_key)
    if hooks is not None:
        hooks.stored(stream.stream_name, shard.shard_id)
    return sequence_number, shard.shard_id


def _backend_put_records(
    self: Any, stream_arn: str, stream_name: str, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """PutRecords semantics: each record succeeds or fails on its own (throttling per record)."""
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    if len(records) > KINESIS_PUT_RECORDS_MAX:
        raise TooManyRecords
    sizes = [data_size(r.get("Data") or "") + len(r.get("PartitionKey") or "") for r in records]
    if sum(sizes) > KINESIS_PUT_RECORDS_MAX_BYTES:
        raise TotalRecordsSizeExceedsLimit
    over = next((i for i, size in enumerate(sizes) if size > KINESIS_MAX_RECORD_BYTES), None)
    if over is not None:
        raise RecordSizeExceedsLimit(position=over + 1)
    failed = 0
    out: list[dict[str, str]] = []
    for record in records:
        try:
            seq, shard_id = _put(self, stream, record.get("PartitionKey"),  # type: ignore[arg-type]
                                 record.get("ExplicitHashKey"), record.get("Data"))  # type: ignore[arg-type]
        except JsonRESTError as exc:
            if exc.error_type != THROUGHPUT_EXCEEDED:
                raise
            failed += 1
            out.append({"ErrorCode": exc.error_type, "ErrorMessage": exc.message})
            continue
        out.append({"SequenceNumber": seq, "ShardId": shard_id})
    return {"FailedRecordCount": failed, "Records": out}


def _backend_put_record(
    self: Any, stream_arn: str, stream_name: str, partition_key: str,
    explicit_hash_key: str, data: str,
) -> tuple[str, str]:
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    key_size = len(partition_key.encode()) if isinstance(partition_key, str) else 0
    if data_size(data or "") + key_size > KINESIS_MAX_RECORD_BYTES:  # also for boto3 over HTTP
        raise JsonRESTError(
            VALIDATION,
            "1 validation error detected: Value at 'data' failed to satisfy constraint: "
            f"Member must have length less than or equal to {KINESIS_MAX_RECORD_BYTES}",
        )
    return _put(self, stream, partition_key, explicit_hash_key, data)


def install() -> None:
    """Patch moto's Kinesis model in place (idempotent; checks moto's version first)."""
    if getattr(kinesis_models, "_twin_installed", False):
        return
    require("moto")
    kinesis_models.Shard.put_record = _shard_put_record  # type: ignore[method-assign]
    kinesis_models.Shard.get_records = _shard_get_records  # type: ignore[method-assign]
    kinesis_models.Stream.get_shard_for_key = _get_shard_for_key  # type: ignore[method-assign]
    # CloudWatch metrics per put cost more than the put itself; the twin does not emit them.
    kinesis_models.KinesisBackend.put_record = _backend_put_record  # type: ignore[method-assign]
    kinesis_models.KinesisBackend.put_records = _backend_put_records  # type: ignore[method-assign]
    kinesis_models._twin_installed = True  # type: ignore[attr-defined]
