"""pipeline.publish: KPL-aggregated SERVER envelopes on the stream (moto Kinesis)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline import DEFAULT_REGION
from pipeline.__main__ import main
from pipeline.publish import (
    MAX_CALL_BYTES,
    MAX_CALL_RECORDS,
    PublishError,
    aggregate,
    batches,
    parse_data,
    publish,
)
from pipeline.runtime import decode_record

STREAM = "WebSocketPipeline-dev-Stream"


@pytest.fixture
def kinesis(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("kinesis", region_name=DEFAULT_REGION)
        client.create_stream(StreamName=STREAM, ShardCount=1)
        yield client


def lambda_records(kinesis: Any) -> list[dict[str, Any]]:
    """Everything on the stream, shaped like the records of a Lambda Kinesis event."""
    shard = kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out = []
    while True:
        page = kinesis.get_records(ShardIterator=it, Limit=10_000)
        out += [{"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["PartitionKey"],
                             "sequenceNumber": r["SequenceNumber"],
                             "data": base64.b64encode(r["Data"]).decode(),
                             "approximateArrivalTimestamp":
                                 r["ApproximateArrivalTimestamp"].timestamp()}}
                for r in page["Records"]]
        if not page["Records"]:
            return out
        it = page["NextShardIterator"]


def test_messages_are_aggregated_into_one_record_and_decode_back(kinesis: Any) -> None:
    result = publish("lobby", {"n": 1}, count=50, client=kinesis)
    assert (result.stream, result.partition_key) == (STREAM, "broadcast#lobby")
    assert (result.messages, result.records, result.calls) == (50, 1, 1)
    (record,) = lambda_records(kinesis)
    envelopes = decode_record(record)
    assert len(envelopes) == 50
    assert [e.sub_sequence_number for e in envelopes] == list(range(50))
    first = envelopes[0]
    assert (first.event_type, first.route_key, first.connection_id) == ("SERVER", "broadcast", "")
    assert json.loads(first.body) == {"room": "lobby", "data": {"n": 1}}
    assert len({e.request_id for e in envelopes}) == 50


def test_large_volumes_respect_the_record_and_call_limits(kinesis: Any) -> None:
    data = "x" * 3000
    result = publish(None, data, count=2000, client=kinesis)  # ~6.5 MB of envelopes
    assert result.partition_key == "broadcast#*"
    assert result.records == 7 and result.calls == 2
    records = lambda_records(kinesis)
    assert len(records) == 7
    assert all(len(base64.b64decode(r["kinesis"]["data"])) <= 1024 * 1024 - 256 for r in records)
    assert sum(len(decode_record(r)) for r in records) == 2000


def test_batches_split_on_500_records_and_5_mib() -> None:
    small = list(batches("k", [b"x"] * 1201))
    assert [len(b) for b in small] == [MAX_CALL_RECORDS, MAX_CALL_RECORDS, 201]
    big = list(batches("k", [b"x" * (1024 * 1024 - 10)] * 11))
    assert [len(b) for b in big] == [5, 5, 1]
    assert all(sum(len(r) + 1 for r in b) <= MAX_CALL_BYTES for b in big)
    assert len(list(aggregate("k", [b"y" * 1000] * 3000))) == 3


@pytest.mark.parametrize(("room", "data", "count", "code"), [
    ("bad room", 1, 1, "invalid_request"),
    ("r" * 65, 1, 1, "invalid_request"),
    ("lobby", 1, 0, "invalid_request"),
    ("lobby", "x" * 140_000, 1, "payload_too_large"),
])
def test_invalid_requests_are_refused_before_anything_is_put(
    kinesis: Any, room: str, data: Any, count: int, code: str
) -> None:
    with pytest.raises(PublishError) as info:
        publish(room, data, count, client=kinesis)
    assert info.value.code == code
    assert lambda_records(kinesis) == []


def test_an_unknown_stream_is_the_aws_error(kinesis: Any) -> None:
    with pytest.raises(PublishError) as info:
        publish("lobby", 1, stream_name="nope", client=kinesis)
    assert info.value.code == "ResourceNotFoundException"


def test_data_that_is_not_json_is_sent_as_a_string() -> None:
    assert parse_data('{"a": [1]}') == {"a": [1]}
    assert parse_data("42") == 42
    assert parse_data("hello world") == "hello world"
    assert parse_data('"42"') == "42"


def test_the_cli_finds_the_only_stream_and_prints_the_result(
    kinesis: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", "--aws", "--room", "lobby", "hello", "--count", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["stream"] == STREAM and printed["messages"] == 3 and printed["records"] == 1
    (record,) = lambda_records(kinesis)
    assert [json.loads(e.body)["data"] for e in decode_record(record)] == ["hello"] * 3
    assert main(["publish", "--aws", "--room", "bad room", "x"]) == 1
    assert "invalid_request" in capsys.readouterr().err
