"""Kinesis on the wire: one request (action, body, content type) in, one HTTP answer out.

The action is the ``X-Amz-Target`` suffix (``Kinesis_20131202.<Action>``); the body is JSON 1.1 or
CBOR 1.1 (:mod:`.wire`), and the answer uses the request's encoding. Members follow botocore's
service model (``botocore/data/kinesis/2013-12-02/service-2.json``). Sans-I/O: the WSGI layer
(:mod:`.wsgi`) and the gateway's door (``pipeline.local.aws_door``) do the I/O.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import wire
from .exceptions import InvalidArgumentError, KinesisError, UnknownOperationError
from .model import KinesisBackend
from .shards import Record, Shard
from .streams import Consumer, Stream, hash_key_range

TARGET_PREFIX = "Kinesis_20131202."


@dataclass(frozen=True)
class WireResponse:
    status: int
    body: bytes
    content_type: str
    error_type: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        out = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))),
               ("x-amzn-RequestId", str(uuid.uuid4()))]
        if self.error_type:
            out.append(("x-amzn-ErrorType", self.error_type))
        return out


def protocol_of(content_type: str | None) -> str:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return wire.CBOR if kind == wire.CBOR else wire.JSON


class KinesisResponses:
    """The Kinesis API over one :class:`KinesisBackend`."""

    def __init__(self, backend: KinesisBackend) -> None:
        self.backend = backend
        self._actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateStream": self.create_stream, "DeleteStream": self.delete_stream,
            "DescribeStream": self.describe_stream,
            "DescribeStreamSummary": self.describe_stream_summary,
            "ListStreams": self.list_streams, "ListShards": self.list_shards,
            "PutRecord": self.put_record, "PutRecords": self.put_records,
            "GetShardIterator": self.get_shard_iterator, "GetRecords": self.get_records,
            "RegisterStreamConsumer": self.register_stream_consumer,
            "DescribeStreamConsumer": self.describe_stream_consumer,
            "ListStreamConsumers": self.list_stream_consumers,
            "DeregisterStreamConsumer": self.deregister_stream_consumer,
            "SplitShard": self.split_shard, "UpdateShardCount": self.update_shard_count,
            "AddTagsToStream": self.add_tags_to_stream,
            "RemoveTagsFromStream": self.remove_tags_from_stream,
            "ListTagsForStream": self.list_tags_for_stream,
        }

    def handle(self, action: str, body: bytes, content_type: str | None = None) -> WireResponse:
        """One request; AWS errors come back as responses, in the request's encoding."""
        protocol = protocol_of(content_type)
        try:
            handler = self._actions.get(action)
            if handler is None:
                raise UnknownOperationError(f"Operation {action} is not supported.")
            result = handler(wire.decode(body, protocol))
            return WireResponse(200, wire.encode(result, protocol), protocol)
        except KinesisError as exc:
            return WireResponse(exc.status, wire.encode_error(exc, protocol), protocol, exc.code)

    # --- streams ------------------------------------------------------------------------------
    def _stream(self, p: dict[str, Any]) -> Stream:
        return self.backend.stream(p.get("StreamName"), p.get("StreamARN"))

    def create_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        mode = (p.get("StreamModeDetails") or {}).get("StreamMode")
        self.backend.create_stream(p.get("StreamName"), p.get("ShardCount"),  # type: ignore[arg-type]
                                   mode=mode)
        return {}

    def delete_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        self.backend.delete_stream(p.get("StreamName"), p.get("StreamARN"),
                                   enforce_consumer_deletion=bool(p.get("EnforceConsumerDeletion")))
        return {}

    def describe_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(p)
        shards = list(stream.shards.values())
        start = p.get("ExclusiveStartShardId")
        if start:
            shards = [s for s in shards if s.shard_id > start]
        limit = p.get("Limit") or 100
        return {"StreamDescription": {
            **_summary(stream), "Shards": [_shard(s) for s in shards[:limit]],
            "HasMoreShards": len(shards) > limit}}

    def describe_stream_summary(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(p)
        return {"StreamDescriptionSummary": {
            **_summary(stream), "OpenShardCount": len(stream.open_shards),
            "ConsumerCount": len(stream.consumers)}}

    def list_streams(self, p: dict[str, Any]) -> dict[str, Any]:
        names = sorted(self.backend.streams)
        after = p.get("ExclusiveStartStreamName") or _untoken(p.get("NextToken"))
        if after:
            names = [n for n in names if n > after]
        limit = p.get("Limit") or 100
        page, more = names[:limit], len(names) > limit
        return {"StreamNames": page, "HasMoreStreams": more,
                "NextToken": _token(page[-1]) if more else None,
                "StreamSummaries": [_stream_summary(self.backend.streams[n]) for n in page
                                    if n in self.backend.streams]}

    def list_shards(self, p: dict[str, Any]) -> dict[str, Any]:
        token = p.get("NextToken")
        if token and (p.get("StreamName") or p.get("StreamARN")):
            raise InvalidArgumentError("NextToken and StreamName cannot be provided together.")
        name, after = (_untoken(token) or "|").split("|", 1) if token else (None, "")
        stream = self.backend.stream(name) if token else self._stream(p)
        after = after or p.get("ExclusiveStartShardId") or ""
        shards = [s for s in stream.shards.values() if s.shard_id > after]
        kind = (p.get("ShardFilter") or {}).get("Type")
        if kind in ("AT_LATEST", "AT_TIP"):
            shards = [s for s in shards if s.is_open]
        limit = p.get("MaxResults") or 10_000
        page, more = shards[:limit], len(shards) > limit
        return {"Shards": [_shard(s) for s in page],
                "NextToken": _token(f"{stream.name}|{page[-1].shard_id}") if more else None}

    def split_shard(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(p)
        try:
            new_start = int(p.get("NewStartingHashKey"))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError("NewStartingHashKey must be a decimal hash key.") from exc
        self.backend.split_shard(stream, str(p.get("ShardToSplit")), new_start)
        return {}

    def update_shard_count(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(p)
        target = p.get("TargetShardCount")
        before = self.backend.update_shard_count(stream, target, p.get("ScalingType"))
        return {"StreamName": stream.name, "StreamARN": stream.arn,
                "CurrentShardCount": before, "TargetShardCount": target}

    def add_tags_to_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        tags = p.get("Tags")
        if not isinstance(tags, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise InvalidArgumentError("Tags must be a map of strings to strings.")
        self.backend.tag(self._stream(p), tags)
        return {}

    def remove_tags_from_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        keys = p.get("TagKeys")
        if not isinstance(keys, list):
            raise InvalidArgumentError("TagKeys must be a list of strings.")
        self.backend.untag(self._stream(p), [str(k) for k in keys])
        return {}

    def list_tags_for_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(p)
        keys = sorted(stream.tags)
        start = p.get("ExclusiveStartTagKey")
        if start:
            keys = [k for k in keys if k > start]
        limit = p.get("Limit") or 50
        return {"Tags": [{"Key": k, "Value": stream.tags[k]} for k in keys[:limit]],
                "HasMoreTags": len(keys) > limit}

    # --- records ------------------------------------------------------------------------------
    def put_record(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(p)
        record, shard = self.backend.put_record(
            stream, p.get("PartitionKey"), wire.blob(p.get("Data"), "Data"),
            p.get("ExplicitHashKey"))
        # An unencrypted stream's answers carry no EncryptionType (recorded: apigateway).
        return {"SequenceNumber": record.sequence_number, "ShardId": shard.shard_id}

    def put_records(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(p)
        entries = p.get("Records")
        if not isinstance(entries, list):
            raise InvalidArgumentError("Records must be a list.")
        decoded = [{**e, "Data": wire.blob(e.get("Data"), "Data")} if isinstance(e, dict)
                   else {} for e in entries]
        return self.backend.put_records(stream, decoded)

    def get_shard_iterator(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(p)
        token = self.backend.get_shard_iterator(
            stream, str(p.get("ShardId")), str(p.get("ShardIteratorType")),
            p.get("StartingSequenceNumber"), wire.timestamp(p.get("Timestamp"), "Timestamp"))
        return {"ShardIterator": token}

    def get_records(self, p: dict[str, Any]) -> dict[str, Any]:
        out = self.backend.get_records(p.get("ShardIterator"), p.get("Limit"))
        out["Records"] = [_record(r) for r in out["Records"]]
        return out

    # --- consumers ----------------------------------------------------------------------------
    def register_stream_consumer(self, p: dict[str, Any]) -> dict[str, Any]:
        consumer = self.backend.register_stream_consumer(
            str(p.get("StreamARN") or ""), p.get("ConsumerName"))  # type: ignore[arg-type]
        # AWS answers CREATING; the twin's consumer is ACTIVE after consumer_activation_s.
        return {"Consumer": {**_consumer(consumer), "ConsumerStatus": "CREATING"}}

    def describe_stream_consumer(self, p: dict[str, Any]) -> dict[str, Any]:
        consumer = self.backend.consumer(p.get("StreamARN"), p.get("ConsumerName"),
                                         p.get("ConsumerARN"))
        return {"ConsumerDescription": {**_consumer(consumer),
                                        "StreamARN": consumer.stream_arn}}

    def list_stream_consumers(self, p: dict[str, Any]) -> dict[str, Any]:
        consumers = self.backend.list_stream_consumers(str(p.get("StreamARN") or ""))
        return {"Consumers": [_consumer(c) for c in consumers]}

    def deregister_stream_consumer(self, p: dict[str, Any]) -> dict[str, Any]:
        self.backend.deregister_stream_consumer(p.get("StreamARN"), p.get("ConsumerName"),
                                                p.get("ConsumerARN"))
        return {}


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _untoken(token: Any) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(str(token)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError("Invalid NextToken.") from exc


def _summary(stream: Stream) -> dict[str, Any]:
    return {"StreamName": stream.name, "StreamARN": stream.arn,
            "StreamStatus": stream.status, "StreamModeDetails": {"StreamMode": stream.mode},
            "RetentionPeriodHours": stream.retention_hours,
            "StreamCreationTimestamp": wire.Timestamp(stream.created),
            "EnhancedMonitoring": [{"ShardLevelMetrics": []}], "EncryptionType": "NONE"}


def _stream_summary(stream: Stream) -> dict[str, Any]:
    return {"StreamName": stream.name, "StreamARN": stream.arn,
            "StreamStatus": stream.status, "StreamModeDetails": {"StreamMode": stream.mode},
            "StreamCreationTimestamp": wire.Timestamp(stream.created)}


def _shard(shard: Shard) -> dict[str, Any]:
    numbers: dict[str, str] = {"StartingSequenceNumber": str(shard.starting_sequence)}
    if shard.ending_sequence is not None:
        numbers["EndingSequenceNumber"] = str(shard.ending_sequence)
    out: dict[str, Any] = {"ShardId": shard.shard_id, "HashKeyRange": hash_key_range(shard),
                           "SequenceNumberRange": numbers}
    if shard.parent_shard_id:
        out["ParentShardId"] = shard.parent_shard_id
    return out


def _record(record: Record) -> dict[str, Any]:
    return {"SequenceNumber": record.sequence_number,
            "ApproximateArrivalTimestamp": wire.Timestamp(record.approximate_arrival_timestamp),
            "Data": record.data, "PartitionKey": record.partition_key}


def _consumer(consumer: Consumer) -> dict[str, Any]:
    return {"ConsumerName": consumer.name, "ConsumerARN": consumer.arn,
            "ConsumerStatus": consumer.status,
            "ConsumerCreationTimestamp": wire.Timestamp(consumer.created)}
