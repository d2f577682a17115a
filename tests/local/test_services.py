"""The twin's AWS services: boto3 over HTTP and the in-process doors share one state."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError
from polling import until
from stacks import aws_services

from pipeline.aws.limits import KINESIS_MAX_RECORD_BYTES
from pipeline.local.cfn import resolve_stack
from pipeline.local.esm.interfaces import Skipped, StoredRecord
from pipeline.local.services import AwsServices
from pipeline.local.shard_source import KinesisShardSource, SqsFailureSink

TEMPLATE: dict[str, Any] = {"Resources": {
    "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 2}},
    "Consumer": {"Type": "AWS::Kinesis::StreamConsumer", "Properties": {
        "ConsumerName": "echo", "StreamARN": {"Fn::GetAtt": ["Stream", "Arn"]}}},
    "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
        "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True}}},
    "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {}},
}}


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[AwsServices, Any]]:
    stack = resolve_stack(TEMPLATE, "SvcTest", Path("/nowhere"))
    with aws_services(stack) as svc:
        yield svc, stack


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_boto3_over_http_sees_the_provisioned_stack(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    stream = stack.resources["Stream"].ref
    kinesis = svc.client("kinesis")
    desc = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    assert len(desc["Shards"]) == 2
    consumers = kinesis.list_stream_consumers(StreamARN=desc["StreamARN"])["Consumers"]
    assert [c["ConsumerARN"] for c in consumers] == [stack.resources["Consumer"].ref]
    ddb = svc.client("dynamodb")
    table = stack.resources["Table"].ref
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiresAt"


def test_in_process_put_is_readable_over_http(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    stream = stack.resources["Stream"].ref
    body = orjson.dumps({"StreamName": stream, "Data": _b64(b"hello"), "PartitionKey": "pk-1"})
    resp = svc.call_aws("kinesis", "PutRecord", body, None)
    assert resp.status == 200 and resp.error_type is None
    out = orjson.loads(resp.body)
    kinesis = svc.client("kinesis")
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=out["ShardId"],
                                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                                    StartingSequenceNumber=out["SequenceNumber"])
    records = kinesis.get_records(ShardIterator=it["ShardIterator"])["Records"]
    assert records[0]["Data"] == b"hello" and records[0]["PartitionKey"] == "pk-1"


def test_aws_errors_come_back_as_responses(services: tuple[AwsServices, Any]) -> None:
    svc, _ = services
    body = orjson.dumps({"StreamName": "nope", "Data": _b64(b"x"), "PartitionKey": "k"})
    resp = svc.call_aws("kinesis", "PutRecord", body, None)
    assert (resp.status, resp.error_type) == (400, "ResourceNotFoundException")
    resp = svc.call_aws("kinesis", "PutRecord", b"{not json", None)
    assert (resp.status, resp.error_type) == (400, "SerializationException")
    resp = svc.call_aws("dynamodb", "PutItem", orjson.dumps(
        {"TableName": "missing", "Item": {"pk": {"S": "a"}}}), None)
    assert resp.status == 400 and resp.error_type == "ResourceNotFoundException"
    assert orjson.loads(resp.body)["__type"].endswith("ResourceNotFoundException")


def test_dynamodb_put_item_in_process(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    table = stack.resources["Table"].ref
    item = {"pk": {"S": "CONN#a"}, "sk": {"S": "META"}, "expiresAt": {"N": "1"}}
    resp = svc.call_aws("dynamodb", "PutItem", orjson.dumps({"TableName": table, "Item": item}), None)
    assert resp.status == 200, resp.body
    got = svc.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "CONN#a"},
                                                                 "sk": {"S": "META"}})
    assert got["Item"]["expiresAt"] == {"N": "1"}


def test_explicit_hash_key_equal_to_ending_hash_key(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    kinesis = svc.client("kinesis")
    stream = stack.resources["Stream"].ref
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    for shard in shards:
        end = shard["HashKeyRange"]["EndingHashKey"]
        out = kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k",
                                 ExplicitHashKey=end)
        assert out["ShardId"] == shard["ShardId"]


def test_throughput_limit_per_shard(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    stream = stack.resources["Stream"].ref
    clock = svc.kinesis.clock
    svc.kinesis.clock = lambda: 1e9  # one frozen second
    svc.kinesis.enforce_limits = True
    try:
        records = [{"Data": _b64(b"x"), "PartitionKey": "same",
                    "ExplicitHashKey": "0"} for _ in range(500)]
        body = orjson.dumps({"StreamName": stream, "Records": records})
        codes: list[str] = []
        for _ in range(3):
            out = orjson.loads(svc.call_aws("kinesis", "PutRecords", body, None).body)
            codes += [r.get("ErrorCode", "ok") for r in out["Records"]]
        assert codes.count("ok") == 1000
        assert "ProvisionedThroughputExceededException" in codes
        with pytest.raises(ClientError) as err:
            svc.client("kinesis").put_record(StreamName=stream, Data=b"x", PartitionKey="k",
                                             ExplicitHashKey="0")
        assert err.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
        assert err.value.response["Error"]["Message"] == (
            f"Rate exceeded for shard shardId-000000000000 in stream {stream} under account "
            "123456789012.")
    finally:
        svc.kinesis.enforce_limits = False
        svc.kinesis.clock = clock


def test_each_aws_services_owns_its_kinesis(services: tuple[AwsServices, Any]) -> None:
    # Instance state: a second AwsServices has its own streams, limits and listeners, and runs
    # beside the first one.
    svc, stack = services
    stream = stack.resources["Stream"].ref
    other = AwsServices(enforce_limits=True)
    heard: list[tuple[str, str]] = []
    other.kinesis.add_listener(lambda name, shard: heard.append((name, shard)))
    mine: list[str] = []
    svc.kinesis.add_listener(lambda name, shard: mine.append(shard))
    body = orjson.dumps({"StreamName": stream, "Data": _b64(b"x"), "PartitionKey": "k",
                         "ExplicitHashKey": "0"})
    for _ in range(3):
        assert svc.call_aws("kinesis", "PutRecord", body, None).status == 200
    assert heard == [] and len(mine) == 3
    refused = other.call_aws("kinesis", "PutRecord", body, None)
    assert (refused.status, refused.error_type) == (400, "ResourceNotFoundException")
    assert orjson.loads(refused.body)["message"] == (
        f"Stream {stream} under account 123456789012 not found.")
    assert other.kinesis.enforce_limits and not svc.kinesis.enforce_limits


async def test_shard_source_wakes_on_http_put(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    stream_arn = stack.resources["Stream"].attributes["Arn"]
    source = KinesisShardSource(svc, asyncio.get_running_loop())
    try:
        assert source.stream_arn_of(stack.resources["Consumer"].ref) == stream_arn
        shard = source.shard_ids(stream_arn)[0]
        last = source.latest_sequence(stream_arn, shard)
        waiter = asyncio.ensure_future(source.wait_for_records(stream_arn, shard, last, 10.0))
        await asyncio.sleep(0)  # let the waiter register before the put
        started = time.monotonic()
        await asyncio.to_thread(
            svc.client("kinesis").put_record, StreamARN=stream_arn, Data=b"wake",
            PartitionKey="p", ExplicitHashKey="0")
        await asyncio.wait_for(waiter, 5.0)
        assert time.monotonic() - started < 5.0
        got = source.read(stream_arn, shard, after_sequence=last, at_timestamp=None, limit=10)
        assert got[-1].data == b"wake" and got[-1].partition_key == "p"
        assert abs(got[-1].approximate_arrival_timestamp - time.time()) < 30
        # every mapping of the stream reads the same record: decoded once, then shared
        again = source.read(stream_arn, shard, after_sequence=last, at_timestamp=None, limit=10)
        assert again[-1] is got[-1]
        # no record after the newest: the wait ends at its deadline
        newest = source.latest_sequence(stream_arn, shard)
        t0 = time.monotonic()
        await source.wait_for_records(stream_arn, shard, newest, 0.05)
        assert time.monotonic() - t0 >= 0.04
    finally:
        source.close()


def test_failure_sink_sends_to_the_queue(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    queue = stack.resources["Dlq"]
    SqsFailureSink(svc).send(queue.attributes["Arn"], {"requestContext": {"condition": "x"}})
    sqs = svc.client("sqs")
    url = sqs.get_queue_url(QueueName=queue.attributes["QueueName"])["QueueUrl"]
    msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    assert orjson.loads(msgs[0]["Body"]) == {"requestContext": {"condition": "x"}}


def test_generated_secret_is_readable_by_the_template_arn(
        services: tuple[AwsServices, Any]) -> None:
    # On the module's services: moto's backends (Secrets Manager here) are process-global.
    svc, _ = services
    stack = resolve_stack({"Resources": {"Key": {
        "Type": "AWS::SecretsManager::Secret",
        "Properties": {"GenerateSecretString": {"ExcludePunctuation": True,
                                                "PasswordLength": 64}}}}},
        "SecretTest", Path("/nowhere"))
    svc.provision(stack)
    arn = stack.resources["Key"].ref
    value = svc.client("secretsmanager").get_secret_value(SecretId=arn)
    assert value["ARN"] == arn
    assert len(value["SecretString"]) == 64 and value["SecretString"].isalnum()


def test_record_over_1_mib_is_refused_on_every_path(services: tuple[AwsServices, Any]) -> None:
    # https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html: a record's
    # data + partition key is at most 1 MiB, also for boto3 over HTTP (not only the gateway's door).
    svc, stack = services
    stream = stack.resources["Stream"].ref
    kinesis = svc.client("kinesis")
    before = {s: sh.last for s, sh in svc.kinesis.stream(stream).shards.items()}
    over = b"x" * (KINESIS_MAX_RECORD_BYTES - 1 + 1)  # + the 1-byte key = 1 MiB + 1
    with pytest.raises(ClientError) as err:
        kinesis.put_record(StreamName=stream, Data=over, PartitionKey="k")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    body = orjson.dumps({"StreamName": stream, "Data": _b64(over), "PartitionKey": "k"})
    assert svc.call_aws("kinesis", "PutRecord", body, None).error_type == "ValidationException"
    after = {s: sh.last for s, sh in svc.kinesis.stream(stream).shards.items()}
    assert after == before  # nothing stored
    exact = b"x" * (KINESIS_MAX_RECORD_BYTES - 1)
    assert kinesis.put_record(StreamName=stream, Data=exact, PartitionKey="k")["SequenceNumber"]


async def test_a_filtered_wait_sleeps_through_rejected_records(
        services: tuple[AwsServices, Any]) -> None:
    """A reader's filter goes with its wait: records it rejects do not wake it, and the answer
    says how far it skipped, so the reader resumes after them (and still gets the wanted one)."""
    svc, stack = services
    stream_arn = stack.resources["Stream"].attributes["Arn"]
    source = KinesisShardSource(svc, asyncio.get_running_loop())
    kinesis = svc.client("kinesis")

    def put(data: bytes) -> str:
        return str(kinesis.put_record(StreamARN=stream_arn, Data=data, PartitionKey="p",
                                      ExplicitHashKey="0")["SequenceNumber"])

    try:
        shard = source.shard_ids(stream_arn)[0]
        start = source.latest_sequence(stream_arn, shard)
        seen: list[bytes] = []

        def wanted(record: StoredRecord) -> bool:
            seen.append(record.data)
            return record.data.startswith(b"yes")

        waiter = asyncio.ensure_future(
            source.wait_for_records(stream_arn, shard, start, 10.0, wanted))
        await asyncio.sleep(0)  # registered
        first = await asyncio.to_thread(put, b"no-1")
        second = await asyncio.to_thread(put, b"no-2")
        await until(lambda: seen == [b"no-1", b"no-2"], 5.0)
        assert not waiter.done()  # two rejected records, no wake-up
        await asyncio.to_thread(put, b"yes-3")
        skipped = await asyncio.wait_for(waiter, 5.0)
        assert skipped == Skipped(second, 2) and int(second) > int(first)
        got = source.read(stream_arn, shard, after_sequence=skipped.last_sequence,
                          at_timestamp=None, limit=10)
        assert [r.data for r in got] == [b"yes-3"]
        # only rejected records until the deadline: the wait ends there and says so
        newest = source.latest_sequence(stream_arn, shard)
        assert newest is not None
        last = await asyncio.to_thread(put, b"no-4")
        assert await source.wait_for_records(stream_arn, shard, newest, 0.2, wanted) == \
            Skipped(last, 1)
    finally:
        source.close()


def test_provisioned_tables_query_one_partition(services: tuple[AwsServices, Any]) -> None:
    """The template's tables read one partition per Query (pipeline.local.ddb_query)."""
    from pipeline.local.ddb_query import IndexedQueryTable

    svc, stack = services
    table = stack.resources["Table"].ref
    assert isinstance(svc.dynamodb.get_table(table), IndexedQueryTable)
    ddb = svc.client("dynamodb")
    for sk in ("b", "a"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "ROOM#q"}, "sk": {"S": sk}})
    got = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "ROOM#q"}})["Items"]
    assert [i["sk"]["S"] for i in got] == ["a", "b"]
