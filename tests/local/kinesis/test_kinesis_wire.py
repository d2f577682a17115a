"""The twin's Kinesis over HTTP on the AWS port: boto3 (JSON 1.1) and a CBOR 1.1 client."""

from __future__ import annotations

import datetime
import http.client
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import cbor2
import pytest
from botocore.exceptions import ClientError
from stacks import aws_services

from pipeline.local.services import AwsServices

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def svc() -> Iterator[AwsServices]:
    with aws_services() as services:
        services.client("kinesis").create_stream(StreamName="wire", ShardCount=2)
        yield services


def _error(err: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    e = err.value.response
    return e["Error"]["Code"], e["Error"]["Message"], e["ResponseMetadata"]["HTTPStatusCode"]


def test_boto3_streams_shards_records_and_a_new_iterator_each_call(svc: AwsServices) -> None:
    kinesis = svc.client("kinesis")
    assert "wire" in kinesis.list_streams()["StreamNames"]
    summary = kinesis.describe_stream_summary(StreamName="wire")["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2 and summary["StreamStatus"] == "ACTIVE"
    assert isinstance(summary["StreamCreationTimestamp"], datetime.datetime)
    shards = kinesis.list_shards(StreamName="wire")["Shards"]
    end = shards[0]["HashKeyRange"]["EndingHashKey"]
    put = kinesis.put_record(StreamName="wire", Data=b"\x00\xffbytes", PartitionKey="k",
                             ExplicitHashKey=end)
    assert put["ShardId"] == shards[0]["ShardId"] and len(put["SequenceNumber"]) == 56
    it = kinesis.get_shard_iterator(StreamName="wire", ShardId=put["ShardId"],
                                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                                    StartingSequenceNumber=put["SequenceNumber"])["ShardIterator"]
    page = kinesis.get_records(ShardIterator=it)
    (record,) = page["Records"]
    assert record["Data"] == b"\x00\xffbytes" and record["PartitionKey"] == "k"
    assert isinstance(record["ApproximateArrivalTimestamp"], datetime.datetime)
    assert page["MillisBehindLatest"] == 0
    again = kinesis.get_records(ShardIterator=page["NextShardIterator"])
    assert again["Records"] == [] and again["NextShardIterator"] != page["NextShardIterator"]
    out = kinesis.put_records(StreamName="wire", Records=[
        {"Data": b"a", "PartitionKey": "p1"}, {"Data": b"b", "PartitionKey": "p2"}])
    assert out["FailedRecordCount"] == 0 and len(out["Records"]) == 2


def test_boto3_errors_carry_aws_codes_and_messages(svc: AwsServices) -> None:
    kinesis = svc.client("kinesis")
    with pytest.raises(ClientError) as err:
        kinesis.describe_stream(StreamName="nope")
    assert _error(err) == ("ResourceNotFoundException",
                           f"Stream nope under account {ACCOUNT} not found.", 400)
    with pytest.raises(ClientError) as err:
        kinesis.get_records(ShardIterator="bogus")
    assert _error(err) == ("InvalidArgumentException", "Invalid ShardIterator.", 400)
    with pytest.raises(ClientError) as err:
        kinesis.create_stream(StreamName="wire", ShardCount=1)
    assert _error(err) == ("ResourceInUseException",
                           f"Stream wire under account {ACCOUNT} already exists.", 400)


def test_boto3_consumers(svc: AwsServices) -> None:
    kinesis = svc.client("kinesis")
    arn = kinesis.describe_stream_summary(StreamName="wire")["StreamDescriptionSummary"][
        "StreamARN"]
    made = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]
    assert made["ConsumerStatus"] == "CREATING"
    epoch = int(made["ConsumerCreationTimestamp"].timestamp())
    assert made["ConsumerARN"] == f"{arn}/consumer/c:{epoch}"
    described = kinesis.describe_stream_consumer(ConsumerARN=made["ConsumerARN"])
    assert described["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE"
    assert [c["ConsumerName"] for c in kinesis.list_stream_consumers(StreamARN=arn)[
        "Consumers"]] == ["c"]
    kinesis.deregister_stream_consumer(ConsumerARN=made["ConsumerARN"])
    with pytest.raises(ClientError) as err:
        kinesis.describe_stream_consumer(ConsumerARN=made["ConsumerARN"])
    assert _error(err) == ("ResourceNotFoundException",
                           f"Consumer {made['ConsumerARN']} under account {ACCOUNT} not found.",
                           400)


def _tag1(value: Any, *_: Any) -> tuple[str, Any]:
    return ("tag1", value)  # AWS's CBOR: tag 1 around epoch milliseconds (not RFC seconds)


def _cbor(svc: AwsServices, action: str, body: Any, *, raw: bytes | None = None
          ) -> tuple[int, str, Any]:
    url = urlsplit(svc.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request("POST", "/", body=raw if raw is not None else cbor2.dumps(body), headers={
            "Content-Type": "application/x-amz-cbor-1.1",
            "X-Amz-Target": f"Kinesis_20131202.{action}"})
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, resp.getheader("Content-Type") or "", cbor2.loads(
            payload, semantic_decoders={1: _tag1})
    finally:
        conn.close()


def test_a_cbor_client_puts_and_gets_bytes_and_epoch_millis(svc: AwsServices) -> None:
    status, content_type, put = _cbor(svc, "PutRecord", {
        "StreamName": "wire", "PartitionKey": "cbor", "Data": b"\x01\x02", "ExplicitHashKey": "0"})
    assert (status, content_type) == (200, "application/x-amz-cbor-1.1")
    # AT_TIMESTAMP with tag 1 around epoch milliseconds, as the Java SDK sends it
    status, _, it = _cbor(svc, "GetShardIterator", {
        "StreamName": "wire", "ShardId": put["ShardId"], "ShardIteratorType": "AT_SEQUENCE_NUMBER",
        "StartingSequenceNumber": put["SequenceNumber"]})
    assert status == 200
    status, _, page = _cbor(svc, "GetRecords", {"ShardIterator": it["ShardIterator"]})
    record = page["Records"][0]
    assert record["Data"] == b"\x01\x02" and record["SequenceNumber"] == put["SequenceNumber"]
    kind, millis = record["ApproximateArrivalTimestamp"]
    assert kind == "tag1" and abs(millis - svc.kinesis.clock() * 1000) < 60_000


def test_a_cbor_at_timestamp_request_reads_tag_1_epoch_millis(svc: AwsServices) -> None:
    stream = svc.kinesis.stream("wire")
    shard = stream.open_shards[1]
    svc.kinesis.put_record(stream, "k", b"old", str(shard.starting_hash))
    after_ms = round(svc.kinesis.clock() * 1000) + 60_000  # a minute ahead: nothing yet
    status, _, it = _cbor(svc, "GetShardIterator", {
        "StreamName": "wire", "ShardId": shard.shard_id, "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": cbor2.CBORTag(1, after_ms)})
    assert status == 200, it
    status, _, page = _cbor(svc, "GetRecords", {"ShardIterator": it["ShardIterator"]})
    assert (status, page["Records"]) == (200, [])  # read as milliseconds, not as seconds


def test_cbor_errors_are_a_cbor_map_with_type_and_message(svc: AwsServices) -> None:
    status, content_type, body = _cbor(svc, "DescribeStream", {"StreamName": "nope"})
    assert (status, content_type) == (400, "application/x-amz-cbor-1.1")
    assert body == {"__type": "ResourceNotFoundException",
                    "message": f"Stream nope under account {ACCOUNT} not found."}
    status, _, body = _cbor(svc, "PutRecord", None, raw=b'{"StreamName":"wire"}')
    assert (status, body) == (400, {"__type": "SerializationException",
                                    "message": "Start of structure or map found where not "
                                               "expected."})
    status, _, body = _cbor(svc, "NoSuchAction", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")


def test_other_services_still_reach_moto(svc: AwsServices) -> None:
    assert svc.client("sqs").list_queues()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert isinstance(svc.client("dynamodb").list_tables()["TableNames"], list)
