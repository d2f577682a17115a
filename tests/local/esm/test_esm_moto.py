"""The engine over the twin's real moto-backed source and SQS sink (in process, no HTTP)."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from esm_harness import FunctionInvoker, Probe, decoded

from pipeline.aws.kpl import AggRecord
from pipeline.local.esm import EventSourceMappingRunner, MappingConfig

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pipeline.local.services") is None,
    reason="the twin's services module (KinesisShardSource, SqsFailureSink) is not there yet",
)


class Moto:
    """A fresh stream, consumer and queue on the shared in-process moto backends."""

    def __init__(self) -> None:
        import asyncio

        from pipeline.local.services import AwsServices
        from pipeline.local.shard_source import KinesisShardSource, SqsFailureSink

        self.services = AwsServices()
        self.source = KinesisShardSource(self.services, asyncio.get_running_loop())
        self.sink = SqsFailureSink(self.services)
        self.name = f"esm-{uuid.uuid4().hex[:10]}"
        self.call("kinesis", "CreateStream", {"StreamName": self.name, "ShardCount": 1})
        self.stream_arn = f"arn:aws:kinesis:us-east-1:123456789012:stream/{self.name}"
        consumer = self.call("kinesis", "RegisterStreamConsumer",
                             {"StreamARN": self.stream_arn, "ConsumerName": "c1"})
        self.consumer_arn = consumer["Consumer"]["ConsumerARN"]
        self.queue_url = self.call("sqs", "CreateQueue", {"QueueName": self.name})["QueueUrl"]
        self.queue_arn = f"arn:aws:sqs:us-east-1:123456789012:{self.name}"

    def call(self, service: str, action: str, body: dict[str, Any]) -> Any:
        response = self.services.call_aws(service, action, json.dumps(body).encode(), None)
        assert response.status == 200, response.body
        return json.loads(response.body or b"{}")

    def put(self, key: str, data: bytes) -> str:
        body = {"StreamName": self.name, "PartitionKey": key,
                "Data": base64.b64encode(data).decode()}
        return str(self.call("kinesis", "PutRecord", body)["SequenceNumber"])

    def dlq(self) -> list[dict[str, Any]]:
        got = self.call("sqs", "ReceiveMessage",
                        {"QueueUrl": self.queue_url, "MaxNumberOfMessages": 10})
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.fixture
async def moto() -> AsyncIterator[Moto]:
    made = Moto()
    yield made
    made.source.close()


async def test_aggregated_records_are_one_unit_kept_by_partition_key(moto: Moto) -> None:
    probe = Probe()
    committed: list[Any] = []

    def function(event: dict[str, Any]) -> None:
        committed.extend(decoded(event))

    config = MappingConfig(
        uuid="m", function_name="consumer", event_source_arn=moto.consumer_arn,
        starting_position="TRIM_HORIZON",
        filters=({"data": {"routeKey": ["echo"]}}, {"partitionKey": [{"prefix": "broadcast#"}]}),
    )
    runner = EventSourceMappingRunner(config, moto.source, FunctionInvoker(function, probe),
                                      moto.sink, retry_backoff_s=0.001)
    await runner.start()
    try:
        moto.put("c1", json.dumps({"routeKey": "echo", "n": 1}).encode())
        moto.put("c1", json.dumps("text").encode())  # JSON, but not an object: filtered out
        moto.put("c1", json.dumps({"routeKey": "chat"}).encode())  # filtered out
        agg = AggRecord()
        agg.add_user_record("broadcast#lobby", b'{"room":"lobby"}')
        agg.add_user_record("broadcast#other", b'{"room":"other"}')
        key, _, blob = agg.get_contents()
        moto.put(key, blob)
        moto.put("c1", json.dumps({"routeKey": "echo", "n": 2}).encode())
        await probe.until(lambda: runner.stats.records_read == 5 and len(committed) == 3)
        # The aggregated record is one unit, kept by its partition key (its data is not JSON).
        assert [v if v is None else v.get("n") for v in committed] == [1, None, 2]
        assert runner.stats.records_filtered_out == 2  # "text" and "chat"
    finally:
        await runner.stop()


async def test_records_a_filter_rejects_do_not_wake_the_reader(moto: Moto) -> None:
    """The reader's filter goes with its wait (KinesisShardSource): a frame for another consumer
    costs this mapping a filter check, not a wake-up and a read; the skipped records still count
    as read and filtered out, and the next wanted record is delivered."""
    probe = Probe()
    committed: list[Any] = []
    reads = 0
    read = moto.source.read

    def counting_read(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return read(*args, **kwargs)

    moto.source.read = counting_read  # type: ignore[method-assign]

    def function(event: dict[str, Any]) -> None:
        committed.extend(decoded(event))

    config = MappingConfig(
        uuid="m", function_name="consumer", event_source_arn=moto.consumer_arn,
        starting_position="LATEST", filters=({"data": {"routeKey": ["echo"]}},),
    )
    runner = EventSourceMappingRunner(config, moto.source, FunctionInvoker(function, probe),
                                      moto.sink, retry_backoff_s=0.001)
    await runner.start()
    try:
        await probe.until(lambda: reads >= 1)  # the reader is positioned and waiting
        before = reads
        for n in range(50):
            moto.put("c1", json.dumps({"routeKey": "chat", "n": n}).encode())
            for _ in range(3):  # yield, so a woken reader would read each record on its own
                await asyncio.sleep(0)
        moto.put("c1", json.dumps({"routeKey": "echo", "n": 50}).encode())
        await probe.until(lambda: len(committed) == 1)
        assert [v.get("n") for v in committed] == [50]
        assert runner.stats.records_read == 51 and runner.stats.records_filtered_out == 50
        assert reads - before <= 2  # not one read per rejected record
    finally:
        await runner.stop()


async def test_failure_record_lands_in_the_sqs_queue(moto: Moto) -> None:
    probe = Probe()

    def function(event: dict[str, Any]) -> None:
        raise RuntimeError("always fails")

    config = MappingConfig(
        uuid="m", function_name="consumer", event_source_arn=moto.consumer_arn,
        starting_position="LATEST", maximum_retry_attempts=0,
        on_failure_destination_arn=moto.queue_arn,
    )
    runner = EventSourceMappingRunner(config, moto.source, FunctionInvoker(function, probe),
                                      moto.sink, retry_backoff_s=0.001)
    await runner.start()
    try:
        seq = moto.put("c1", b"{}")
        await probe.until(lambda: runner.stats.failure_messages_sent == 1)
        (message,) = moto.dlq()
        info = message["KinesisBatchInfo"]
        assert info["startSequenceNumber"] == info["endSequenceNumber"] == seq
        assert info["streamArn"] == moto.stream_arn and info["shardId"] == "shardId-000000000000"
        assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    finally:
        await runner.stop()
