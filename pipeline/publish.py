"""``python -m pipeline publish``: server-side messages to a room, through the stream.

A backend that wants to push to a room puts SERVER envelopes (docs/contracts.md) on the stream,
KPL-aggregated with aws-kinesis-agg into as few Kinesis records (<= 1 MiB each, partition key
included) and as few ``PutRecords`` calls (<= 500 records and <= 5 MiB each) as the limits allow;
the ``broadcast`` consumer de-aggregates them and posts to every member.
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html

Defaults aim at the local twin: endpoint ``$AWS_ENDPOINT_URL`` or ``http://127.0.0.1:4566``
(``--aws`` for real AWS), the stream ``$STREAM_NAME`` or the only stream ListStreams returns.
DATA is parsed as JSON; text that is not JSON is sent as a JSON string (``hello`` -> ``"hello"``).
Ordering: records of one room share a partition key, so one shard, in order; an entry that
PutRecords rejects (throttled) is retried after the accepted ones, which may reorder it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline import DEFAULT_REGION
from pipeline.aws.kpl import RecordAggregator
from pipeline.aws.limits import KINESIS_MAX_PARTITION_KEY as MAX_PARTITION_KEY_BYTES
from pipeline.aws.limits import KINESIS_MAX_RECORD_BYTES as MAX_RECORD_BYTES
from pipeline.aws.limits import (
    KINESIS_PUT_RECORDS_MAX,
    KINESIS_PUT_RECORDS_MAX_BYTES,
    WEBSOCKET_MESSAGE_BYTES,
)
from pipeline.names import TWIN_AWS_ENDPOINT
from pipeline.runtime.roster import ROOM_PATTERN

LOCAL_ENDPOINT = TWIN_AWS_ENDPOINT
MAX_CALL_RECORDS = KINESIS_PUT_RECORDS_MAX  # PutRecords: <= 500 records, <= 5 MiB per call
MAX_CALL_BYTES = KINESIS_PUT_RECORDS_MAX_BYTES
MAX_MESSAGE_BYTES = WEBSOCKET_MESSAGE_BYTES  # a WebSocket message API Gateway can post
MAX_COUNT = 100_000
PUT_ATTEMPTS = 5


class PublishError(Exception):
    """The publish request is invalid or the stream refused it (``code`` says which)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PublishResult:
    """How many messages went out, in how many Kinesis records and PutRecords calls."""

    stream: str
    partition_key: str
    messages: int
    records: int
    calls: int
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def partition_key(room: str | None) -> str:
    """``broadcast#<room>``, or ``broadcast#*`` for everyone (docs/contracts.md)."""
    return f"broadcast#{'*' if room is None else room}"


def server_envelope(room: str | None, data: Any, stage: str = "") -> bytes:
    """One SERVER envelope, as the broadcast consumer expects it."""
    now = int(time.time() * 1000)
    return json.dumps({
        "v": 1, "routeKey": "broadcast", "eventType": "SERVER", "connectionId": "",
        "requestId": str(uuid.uuid4()), "messageId": "", "requestTimeEpoch": now,
        "stage": stage, "domainName": "", "sourceIp": "", "principal": "",
        "body": json.dumps({"room": room, "data": data}, separators=(",", ":")),
    }, separators=(",", ":")).encode()


def aggregate(key: str, payloads: Iterable[bytes]) -> Iterator[bytes]:
    """KPL-aggregate user records of one partition key into records of <= 1 MiB with the key."""
    aggregator = RecordAggregator(max_size=MAX_RECORD_BYTES - MAX_PARTITION_KEY_BYTES)
    for payload in payloads:
        full = aggregator.add_user_record(key, payload)
        if full is not None:
            yield full.get_contents()[2]
    last = aggregator.clear_and_get()
    if last is not None:
        yield last.get_contents()[2]


def batches(key: str, records: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Group records into PutRecords calls of <= 500 records and <= 5 MiB (data + keys)."""
    batch: list[bytes] = []
    size = 0
    for record in records:
        cost = len(record) + len(key.encode())
        if batch and (len(batch) == MAX_CALL_RECORDS or size + cost > MAX_CALL_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += cost
    if batch:
        yield batch


def publish(
    room: str | None,
    data: Any,
    count: int = 1,
    *,
    stream_name: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    client: Any = None,
) -> PublishResult:
    """Put ``count`` broadcast messages of ``data`` for ``room`` (``None``: everyone)."""
    if room is not None and not ROOM_PATTERN.match(room):
        raise PublishError("invalid_request",
                           "room must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
    if not 1 <= count <= MAX_COUNT:
        raise PublishError("invalid_request", f"count must be 1..{MAX_COUNT}")
    frame = json.dumps({"action": "broadcast", "room": room, "data": data})
    if len(frame.encode()) > MAX_MESSAGE_BYTES:
        raise PublishError("payload_too_large",
                           f"the broadcast frame is {len(frame.encode())} bytes; a WebSocket "
                           f"message may carry {MAX_MESSAGE_BYTES}")
    kinesis = client or _client(endpoint_url, region)
    stream = stream_name or _find_stream(kinesis)
    key = partition_key(room)
    payloads = (server_envelope(room, data) for _ in range(count))
    records = calls = total = 0
    for batch in batches(key, aggregate(key, payloads)):
        _put(kinesis, stream, key, batch)
        records += len(batch)
        calls += 1
        total += sum(len(r) for r in batch)
    return PublishResult(stream, key, count, records, calls, total)


def _put(kinesis: Any, stream: str, key: str, batch: list[bytes]) -> None:
    pending = batch
    for attempt in range(PUT_ATTEMPTS):
        try:
            answer = kinesis.put_records(
                StreamName=stream,
                Records=[{"Data": data, "PartitionKey": key} for data in pending])
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise PublishError(str(err.get("Code", "")), str(err.get("Message", ""))) from exc
        except BotoCoreError as exc:
            raise PublishError("EndpointError", str(exc)) from exc
        if not answer.get("FailedRecordCount"):
            return
        pending = [data for data, result in zip(pending, answer["Records"], strict=True)
                   if result.get("ErrorCode")]
        time.sleep(random.uniform(0, min(2.0, 0.1 * 2**attempt)))  # full jitter backoff
    raise PublishError("ProvisionedThroughputExceededException",
                       f"{len(pending)} record(s) still rejected after {PUT_ATTEMPTS} attempts")


def _client(endpoint_url: str | None, region: str | None) -> Any:
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") \
        or DEFAULT_REGION
    kwargs: dict[str, Any] = {}
    if endpoint_url and not _has_configured_credentials():
        kwargs.update(aws_access_key_id="test", aws_secret_access_key="test")  # the twin
    return boto3.client("kinesis", endpoint_url=endpoint_url, region_name=region,
                        config=Config(retries={"mode": "standard"}), **kwargs)


def _has_configured_credentials() -> bool:
    # Looked up without boto3's full chain, which would probe the instance metadata service.
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
                or Path("~/.aws/credentials").expanduser().exists())


def _find_stream(kinesis: Any) -> str:
    if os.environ.get("STREAM_NAME"):
        return os.environ["STREAM_NAME"]
    try:
        names = [n for page in kinesis.get_paginator("list_streams").paginate()
                 for n in page.get("StreamNames", [])]
    except (ClientError, BotoCoreError) as exc:
        raise PublishError("EndpointError", f"cannot list streams: {exc}") from exc
    if len(names) != 1:
        raise PublishError("StreamNotFound",
                           f"found {len(names)} streams {names}: name one with --stream")
    return str(names[0])


def parse_data(text: str) -> Any:
    """DATA as JSON when it parses, else the text itself as a JSON string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The ``publish`` command's arguments."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--room", help="the room whose members get the message")
    target.add_argument("--everyone", action="store_true", help="every connection")
    parser.add_argument("data", metavar="DATA",
                        help="the message: JSON, or any other text (sent as a JSON string)")
    parser.add_argument("--count", type=int, default=1, help="send it N times (default 1)")
    parser.add_argument("--stream", help="stream name (default: $STREAM_NAME or the only one)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint-url",
                       default=os.environ.get("AWS_ENDPOINT_URL") or LOCAL_ENDPOINT,
                       help=f"AWS endpoint (default: $AWS_ENDPOINT_URL or {LOCAL_ENDPOINT}, "
                            "the local twin)")
    where.add_argument("--aws", action="store_true", help="use real AWS (no endpoint override)")
    parser.add_argument("--region", help=f"region (default: $AWS_REGION, $AWS_DEFAULT_REGION, "
                                         f"{DEFAULT_REGION})")


def run(args: argparse.Namespace) -> int:
    """Publish and print one JSON line with the result; exit 1 with a message on error."""
    try:
        result = publish(
            None if args.everyone else args.room, parse_data(args.data), args.count,
            stream_name=args.stream, endpoint_url=None if args.aws else args.endpoint_url,
            region=args.region)
    except PublishError as exc:
        print(f"publish failed: {exc.code}: {exc}", file=sys.stderr)
        if exc.code == "EndpointError":
            print("is the local twin running? start it with `make local`, or pass "
                  "--endpoint-url / --aws for a deployed stack", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict()))
    return 0
