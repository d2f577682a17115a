"""The twin's Kinesis: streams, shards, records, iterators and consumers, with no I/O.

One :class:`KinesisBackend` per :class:`~pipeline.local.services.AwsServices` (no process-global
state). Its callers: the HTTP wire (:mod:`.responses`), the gateway's in-process door
(``pipeline.local.aws_door``) and the event source mappings (``pipeline.local.shard_source``),
which read the shards directly and are told of every put by :meth:`KinesisBackend.add_listener`.
Semantics follow the Kinesis API reference
(https://docs.aws.amazon.com/kinesis/latest/APIReference/); time comes from the injected clock.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.aws import arns
from pipeline.aws.arns import KinesisSourceArn
from pipeline.aws.limits import (
    ACCOUNT_ID,
    KINESIS_GET_RECORDS_MAX,
    KINESIS_MAX_PARTITION_KEY,
    KINESIS_MAX_RECORD_BYTES,
    KINESIS_PUT_RECORDS_MAX,
    KINESIS_PUT_RECORDS_MAX_BYTES,
    MAX_STREAM_CONSUMERS,
    REGION,
)

from . import iterators
from .exceptions import (
    ExpiredIteratorError,
    InvalidArgumentError,
    LimitExceededError,
    ResourceInUseError,
    ResourceNotFoundError,
    ThroughputExceededError,
    ValidationError,
)
from .shards import MAX_HASH_KEY, Record, Shard, hash_key_of
from .streams import Consumer, Stream

PutListener = Callable[[str, str], None]  # (stream_name, shard_id), after each stored record

# https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html: a new on-demand
# stream has 4 shards (AWS scales it from there; the twin does not).
ON_DEMAND_SHARDS = 4
MAX_CONSUMERS_PER_STREAM = MAX_STREAM_CONSUMERS
# "you cannot have more than 5 consumers in a CREATING status at the same time. Registering a
# 6th consumer while there are 5 in a CREATING status results in a LimitExceededException":
# https://docs.aws.amazon.com/kinesis/latest/APIReference/API_RegisterStreamConsumer.html
MAX_CONSUMERS_CREATING = 5
ITERATOR_TYPES = ("AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER", "AT_TIMESTAMP", "TRIM_HORIZON",
                  "LATEST")
_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")


MAX_TAGS_PER_STREAM = 50
MAX_TAGS_PER_CALL = 10


class KinesisBackend:
    """Kinesis Data Streams for one account and Region."""

    def __init__(self, region: str = REGION, account_id: str = ACCOUNT_ID, *,
                 enforce_limits: bool = False, clock: Callable[[], float] = time.time,
                 consumer_activation_s: float = 0.0) -> None:
        self.region, self.account_id = region, account_id
        self.enforce_limits = enforce_limits  # 1,000 records/s and 1 MiB/s per shard
        # How long a registered consumer stays CREATING (AWS: seconds; 0: ACTIVE at once).
        self.consumer_activation_s = consumer_activation_s
        self.clock = clock  # epoch seconds: arrival times, iterator ages, write limits
        self.streams: dict[str, Stream] = {}
        self._listeners: tuple[PutListener, ...] = ()
        self._lock = threading.Lock()

    # --- listeners ------------------------------------------------------------------------------
    def add_listener(self, listener: PutListener) -> None:
        """Call ``listener(stream_name, shard_id)`` after every stored record (any thread)."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: PutListener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    # --- streams --------------------------------------------------------------------------------
    def create_stream(self, name: str, shard_count: int | None = None, *,
                      mode: str | None = None) -> Stream:
        """CreateStream. Without a mode, a stream with no ShardCount is on-demand (4 shards), as
        AWS answered when recorded (tests/aws_recordings: create_stream_without_shard_count)."""
        if mode is None:
            mode = "ON_DEMAND" if shard_count is None else "PROVISIONED"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValidationError.constraint(name, "streamName", "satisfy regular expression "
                                             "pattern: [a-zA-Z0-9_.-]+")
        if mode == "ON_DEMAND":
            shard_count = ON_DEMAND_SHARDS if shard_count is None else shard_count
        elif mode != "PROVISIONED":
            raise ValidationError.constraint(mode, "streamModeDetails.streamMode",
                                             "satisfy enum value set: [PROVISIONED, ON_DEMAND]")
        if shard_count is None:
            raise ValidationError("ShardCount is required for a PROVISIONED stream")
        if not isinstance(shard_count, int) or shard_count < 1:
            raise ValidationError.constraint(shard_count, "shardCount",
                                             "have value greater than or equal to 1")
        with self._lock:
            if name in self.streams:
                raise ResourceInUseError(
                    f"Stream {name} under account {self.account_id} already exists.")
            arn = f"arn:aws:kinesis:{self.region}:{self.account_id}:stream/{name}"
            stream = Stream(name, arn, mode, shard_count, self.clock())
            self.streams[name] = stream
        return stream

    def delete_stream(self, name: str | None = None, arn: str | None = None, *,
                      enforce_consumer_deletion: bool = False) -> None:
        stream = self.stream(name, arn)
        if stream.consumers and not enforce_consumer_deletion:
            raise ResourceInUseError(
                f"Stream {stream.name} under account {self.account_id} has registered "
                "consumers. Set EnforceConsumerDeletion to delete them with the stream.")
        with self._lock:
            self.streams.pop(stream.name, None)

    def stream(self, name: str | None = None, arn: str | None = None) -> Stream:
        """The stream by name or ARN (ResourceNotFoundException when there is none)."""
        if not name:
            if not arn:
                raise ValidationError("Either StreamName or StreamARN should be provided.")
            name = arn.split(":stream/", 1)[-1].split("/", 1)[0]
        stream = self.streams.get(name)
        if stream is None or (arn and stream.arn != KinesisSourceArn.parse(arn).stream_arn):
            raise ResourceNotFoundError.stream(name, self.account_id)
        return stream

    def shard(self, stream: Stream, shard_id: str) -> Shard:
        shard = stream.shards.get(shard_id)
        if shard is None:
            raise ResourceNotFoundError.shard(shard_id, stream.name, self.account_id)
        return shard

    def tag(self, stream: Stream, tags: Mapping[str, str]) -> None:
        """AddTagsToStream: at most 50 tags a stream (KDS-limits), 10 a call."""
        if len(tags) > MAX_TAGS_PER_CALL:
            raise InvalidArgumentError(f"Failed to add tags to stream {stream.name} under account "
                                       f"{self.account_id} because a given request cannot have "
                                       f"more than {MAX_TAGS_PER_CALL} tags.")
        with self._lock:
            merged = {**stream.tags, **tags}
            if len(merged) > MAX_TAGS_PER_STREAM:
                raise LimitExceededError(f"Failed to add tags to stream {stream.name} under "
                                         f"account {self.account_id} because it would have more "
                                         f"than {MAX_TAGS_PER_STREAM} tags.")
            stream.tags = merged

    def untag(self, stream: Stream, keys: Sequence[str]) -> None:
        """RemoveTagsFromStream (an absent key is not an error)."""
        with self._lock:
            stream.tags = {k: v for k, v in stream.tags.items() if k not in keys}

    def split_shard(self, stream: Stream, shard_id: str, new_starting_hash_key: int
                    ) -> tuple[Shard, Shard]:
        """SplitShard: the parent closes, two children share its hash key range."""
        parent = self.shard(stream, shard_id)
        if not parent.is_open:
            raise ResourceInUseError(f"Shard {shard_id} in stream {stream.name} under account "
                                     f"{self.account_id} has already been merged or split, "
                                     "and thus is not eligible for merging or splitting.")
        if not parent.starting_hash < new_starting_hash_key <= parent.ending_hash:
            raise InvalidArgumentError(
                f"NewStartingHashKey {new_starting_hash_key} used in SplitShard() on shard "
                f"{shard_id} in stream {stream.name} under account {self.account_id} is not "
                "both greater than one plus the shard's StartingHashKey and less than the "
                "shard's EndingHashKey.")
        return stream.split(parent, new_starting_hash_key, self.clock())

    def update_shard_count(self, stream: Stream, target: Any,
                           scaling_type: Any = "UNIFORM_SCALING") -> int:
        """UpdateShardCount (provisioned streams only): the count before. The twin only grows,
        up to double (AWS's per-call limit), by splitting the widest open shards at their
        middle: a doubling is uniform, as AWS's would be.
        https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html"""
        if stream.mode == "ON_DEMAND":
            # The API reference: ValidationException for an on-demand stream (text unrecorded).
            raise ValidationError(f"UpdateShardCount is not supported for stream {stream.name} "
                                  f"under account {self.account_id} in ON_DEMAND mode.")
        if scaling_type != "UNIFORM_SCALING":
            raise ValidationError.constraint(scaling_type, "scalingType",
                                             "satisfy enum value set: [UNIFORM_SCALING]")
        return self.grow(stream, target)

    def grow(self, stream: Stream, target: Any) -> int:
        """Split open shards until ``target`` are open (also what AWS's on-demand scaling does,
        which the twin triggers with ``--grow-shards``); the count before."""
        before = len(stream.open_shards)
        if not isinstance(target, int) or not before <= target <= 2 * before:
            raise InvalidArgumentError(
                f"TargetShardCount {target} for stream {stream.name} under account "
                f"{self.account_id}: the twin grows a stream up to double its {before} open "
                "shards (and never shrinks one)")
        while len(stream.open_shards) < target:
            widest = max(stream.open_shards, key=lambda s: s.ending_hash - s.starting_hash)
            middle = widest.starting_hash + (widest.ending_hash - widest.starting_hash + 1) // 2
            self.split_shard(stream, widest.shard_id, middle)
        return before

    # --- writes ---------------------------------------------------------------------------------
    def put_record(self, stream: Stream, partition_key: Any, data: bytes,
                   explicit_hash_key: Any = None, *, arrival: float | None = None
                   ) -> tuple[Record, Shard]:
        """PutRecord: the stored record and its shard (errors as Kinesis raises them)."""
        shard = self._shard_for(stream, partition_key, explicit_hash_key)
        size = len(data) + len(partition_key.encode())
        if size > KINESIS_MAX_RECORD_BYTES:
            raise ValidationError(
                "1 validation error detected: Value at 'data' failed to satisfy constraint: "
                f"Member must have length less than or equal to {KINESIS_MAX_RECORD_BYTES}")
        return self._store(stream, shard, partition_key, data, explicit_hash_key, size,
                           arrival), shard

    def put_records(self, stream: Stream, entries: Sequence[Mapping[str, Any]]
                    ) -> dict[str, Any]:
        """PutRecords: each entry succeeds or fails (throttled) on its own."""
        if not 1 <= len(entries) <= KINESIS_PUT_RECORDS_MAX:
            raise ValidationError.constraint(
                "[...]", "records", f"have length less than or equal to "
                f"{KINESIS_PUT_RECORDS_MAX}" if entries else "have length greater than or "
                "equal to 1")
        planned: list[tuple[Shard, str, bytes, Any, int]] = []
        total = 0
        for entry in entries:
            data = entry.get("Data")
            if not isinstance(data, bytes):
                raise ValidationError.constraint(None, "records.member.data",
                                                 "not be null")
            shard = self._shard_for(stream, entry.get("PartitionKey"),
                                    entry.get("ExplicitHashKey"))
            key = str(entry.get("PartitionKey"))
            size = len(data) + len(key.encode())
            if size > KINESIS_MAX_RECORD_BYTES:
                raise ValidationError(
                    "1 validation error detected: Value at 'records.member.data' failed to "
                    "satisfy constraint: Member must have length less than or equal to "
                    f"{KINESIS_MAX_RECORD_BYTES}")
            total += size
            planned.append((shard, key, data, entry.get("ExplicitHashKey"), size))
        if total > KINESIS_PUT_RECORDS_MAX_BYTES:
            raise InvalidArgumentError("Records size exceeds 5 MB limit")
        failed = 0
        out: list[dict[str, str]] = []
        for shard, key, data, explicit, size in planned:
            try:
                record = self._store(stream, shard, key, data, explicit, size, None)
            except ThroughputExceededError as exc:
                failed += 1
                out.append({"ErrorCode": exc.code, "ErrorMessage": exc.message})
                continue
            out.append({"SequenceNumber": record.sequence_number, "ShardId": shard.shard_id})
        return {"FailedRecordCount": failed, "Records": out}  # unencrypted: no EncryptionType

    def _shard_for(self, stream: Stream, partition_key: Any, explicit_hash_key: Any) -> Shard:
        if not isinstance(partition_key, str) or not 1 <= len(partition_key) <= \
                KINESIS_MAX_PARTITION_KEY:
            raise ValidationError.constraint(
                partition_key, "partitionKey",
                f"have length less than or equal to {KINESIS_MAX_PARTITION_KEY}"
                if isinstance(partition_key, str) and partition_key
                else "have length greater than or equal to 1")
        if explicit_hash_key is None:
            hash_key = hash_key_of(partition_key)
        else:
            try:
                hash_key = int(explicit_hash_key)
            except (TypeError, ValueError):
                hash_key = -1
            if not 0 <= hash_key <= MAX_HASH_KEY:
                raise InvalidArgumentError(
                    "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: "
                    f"[0, 2^128-1]. Specified value was {explicit_hash_key}")
        return stream.shard_for(hash_key)

    def _store(self, stream: Stream, shard: Shard, partition_key: str, data: bytes,
               explicit_hash_key: Any, size: int, arrival: float | None) -> Record:
        now = self.clock()
        if self.enforce_limits:
            with self._lock:
                admitted = shard.limiter.admit(now, size)
            if not admitted:
                raise ThroughputExceededError(stream.name, shard.shard_id, self.account_id)
        record = shard.append(partition_key, data,
                              None if explicit_hash_key is None else str(explicit_hash_key),
                              now if arrival is None else arrival)
        for listener in self._listeners:
            listener(stream.name, shard.shard_id)
        return record

    # --- reads ----------------------------------------------------------------------------------
    def get_shard_iterator(self, stream: Stream, shard_id: str, iterator_type: str,
                           starting_sequence_number: Any = None,
                           timestamp: float | None = None) -> str:
        shard = self.shard(stream, shard_id)
        if iterator_type == "TRIM_HORIZON":
            after = shard.starting_sequence - 1
        elif iterator_type == "LATEST":
            after = shard.last
        elif iterator_type in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            number = self._sequence_of(shard, starting_sequence_number, iterator_type)
            after = number - 1 if iterator_type == "AT_SEQUENCE_NUMBER" else number
        elif iterator_type == "AT_TIMESTAMP":
            if timestamp is None:
                raise InvalidArgumentError(
                    "Must specify timestampInMillis parameter for iterator of type "
                    "AT_TIMESTAMP. Current request has no timestamp parameter.")
            after = shard.position_at(timestamp)
        else:
            raise ValidationError.constraint(
                iterator_type, "shardIteratorType",
                f"satisfy enum value set: [{', '.join(ITERATOR_TYPES)}]")
        return iterators.encode(iterators.IteratorState(
            stream.name, shard.shard_id, after, int(self.clock() * 1000)))

    def _sequence_of(self, shard: Shard, value: Any, iterator_type: str) -> int:
        if value is None:
            raise InvalidArgumentError(
                f"Must specify StartingSequenceNumber for iterator of type {iterator_type}.")
        if not isinstance(value, str) or not value.isdigit():
            raise ValidationError.constraint(value, "startingSequenceNumber",
                                             "satisfy regular expression pattern: "
                                             "0|([1-9]\\d{0,128})")
        number = int(value)
        encoded = (number // 10**30) % 10**6
        if len(value) == 56 and encoded != shard.index % 10**6:
            raise InvalidArgumentError(
                f"Invalid StartingSequenceNumber. It encodes shardId-{encoded:012d}, while it "
                f"was used in a call to a shard with {shard.shard_id}")
        return number

    def get_records(self, token: Any, limit: Any = None) -> dict[str, Any]:
        """GetRecords: the records after the iterator's position and a NEW iterator."""
        if limit is None:
            limit = KINESIS_GET_RECORDS_MAX
        if not isinstance(limit, int) or limit < 1:
            raise ValidationError.constraint(limit, "limit",
                                             "have value greater than or equal to 1")
        if limit > KINESIS_GET_RECORDS_MAX:
            # "If you specify a value that is greater than 10,000, GetRecords throws
            # InvalidArgumentException" (API_GetRecords.html), not a validation error.
            raise InvalidArgumentError(f"Limit {limit} exceeds the maximum of "
                                       f"{KINESIS_GET_RECORDS_MAX} records per GetRecords.")
        state = iterators.decode(token)
        now = self.clock()
        if now * 1000 - state.issued_ms > iterators.ITERATOR_TTL_MS:
            raise ExpiredIteratorError(state.issued_ms / 1000, now, iterators.ITERATOR_TTL_MS)
        stream = self.stream(state.stream_name)
        shard = self.shard(stream, state.shard_id)
        records = shard.after(state.after, limit)
        after = int(records[-1].sequence_number) if records else state.after
        newest = shard.newest()
        behind = 0
        if records and newest is not None:
            behind = max(0, int((newest.approximate_arrival_timestamp
                                 - records[-1].approximate_arrival_timestamp) * 1000))
        out: dict[str, Any] = {"Records": records, "MillisBehindLatest": behind}
        if shard.ending_sequence is not None and after >= shard.ending_sequence:
            out["NextShardIterator"] = None  # a closed shard read to its end
            out["ChildShards"] = stream.children_of(shard)
        else:
            out["NextShardIterator"] = iterators.encode(iterators.IteratorState(
                stream.name, shard.shard_id, after, int(now * 1000)))
        return out

    # --- enhanced fan-out consumers -------------------------------------------------------------
    def register_stream_consumer(self, stream_arn: str, name: str, *,
                                 created: int | None = None) -> Consumer:
        """RegisterStreamConsumer (``created``: the creation epoch seconds in its ARN)."""
        stream = self.stream(arn=stream_arn)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValidationError.constraint(name, "consumerName", "satisfy regular expression "
                                             "pattern: [a-zA-Z0-9_.-]+")
        with self._lock:
            self._settle(stream)
            if name in stream.consumers:
                raise ResourceInUseError(f"Consumer {stream.consumers[name].arn} under "
                                         f"account {self.account_id} already exists.")
            if len(stream.consumers) >= MAX_CONSUMERS_PER_STREAM:
                raise LimitExceededError(
                    f"Stream {stream.name} under account {self.account_id} has reached the "
                    f"limit of {MAX_CONSUMERS_PER_STREAM} registered consumers.")
            creating = sum(c.status == "CREATING" for c in stream.consumers.values())
            if creating >= MAX_CONSUMERS_CREATING:
                # AWS's text for this case is not recorded; shaped like CreateStream's
                # "simultaneously be in CREATING" message (docs/fidelity.md).
                raise LimitExceededError(
                    "This request would exceed the limit on the number of consumers that can "
                    f"simultaneously be in CREATING status for stream {stream.name} under "
                    f"account {self.account_id}. Limit: {MAX_CONSUMERS_CREATING}.")
            now = self.clock()
            epoch = int(now) if created is None else created
            consumer = Consumer(name, arns.consumer_arn(stream.arn, name, epoch), stream.arn,
                                epoch, active_at=now + self.consumer_activation_s)
            if self.consumer_activation_s > 0:
                consumer.status = "CREATING"
            stream.consumers[name] = consumer
        return consumer

    def _settle(self, stream: Stream) -> None:
        """CREATING consumers whose activation time has come are ACTIVE (under the lock)."""
        now = self.clock()
        for consumer in stream.consumers.values():
            if consumer.status == "CREATING" and now >= consumer.active_at:
                consumer.status = "ACTIVE"

    def consumer(self, stream_arn: str | None = None, name: str | None = None,
                 consumer_arn: str | None = None) -> Consumer:
        """DescribeStreamConsumer's lookup: by ARN, or by stream ARN and name."""
        if consumer_arn:
            # AWS accepts a StreamARN beside the ConsumerARN (recorded: stream_consumers).
            source = KinesisSourceArn.parse(consumer_arn)
            if stream_arn and (source.stream_arn != stream_arn or not source.enhanced_fan_out):
                raise ResourceNotFoundError.consumer(consumer_arn, self.account_id)
            stream_arn, name = source.stream_arn, source.consumer_name
        elif not (stream_arn and name):
            raise InvalidArgumentError("Either ConsumerARN or both StreamARN and ConsumerName "
                                       "must be provided.")
        try:
            stream = self.stream(arn=stream_arn)
        except ResourceNotFoundError:
            stream = None
        found = stream.consumers.get(name) if stream is not None and name else None
        if found is None or (consumer_arn and found.arn != consumer_arn):
            raise ResourceNotFoundError.consumer(consumer_arn or f"{name} on {stream_arn}",
                                                 self.account_id)
        assert stream is not None  # found in it
        with self._lock:
            self._settle(stream)
        return found

    def list_stream_consumers(self, stream_arn: str) -> list[Consumer]:
        stream = self.stream(arn=stream_arn)
        with self._lock:
            self._settle(stream)
        return list(stream.consumers.values())

    def deregister_stream_consumer(self, stream_arn: str | None = None, name: str | None = None,
                                   consumer_arn: str | None = None) -> None:
        """DeregisterStreamConsumer (AWS: DELETING for a while; the twin: gone at once)."""
        consumer = self.consumer(stream_arn, name, consumer_arn)
        with self._lock:
            self.stream(arn=consumer.stream_arn).consumers.pop(consumer.name, None)
