"""AWS-shaped sequence numbers in the twin: 56 decimal digits, strictly increasing per shard.

AWS: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html (SequenceNumber
pattern ``0|([1-9]\\d{0,128})``) and the Lambda event samples' ``4959...`` numbers (56 digits).
User code and the ESM's checkpoints compare them as numbers; nothing may assume they are dense.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from stacks import aws_services

from pipeline.local.cfn import resolve_stack
from pipeline.local.services import AwsServices
from pipeline.local.shard_source import KinesisShardSource

TEMPLATE: dict[str, Any] = {"Resources": {
    "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 2}},
}}


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[AwsServices, Any]]:
    stack = resolve_stack(TEMPLATE, "SeqTest", Path("/nowhere"))
    with aws_services(stack) as svc:
        yield svc, stack


def _put_in_process(svc: AwsServices, stream: str, i: int) -> dict[str, str]:
    body = orjson.dumps({"StreamName": stream, "PartitionKey": "same-key",
                         "Data": base64.b64encode(f"r{i}".encode()).decode()})
    resp = svc.call_aws("kinesis", "PutRecord", body, None)
    assert resp.status == 200, resp.body
    out: dict[str, str] = orjson.loads(resp.body)
    return out


def test_sequence_numbers_are_56_digits_strictly_increasing_and_not_dense(
        services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    stream = stack.resources["Stream"].ref
    kinesis = svc.client("kinesis")
    puts = [_put_in_process(svc, stream, i) for i in range(3)]
    puts += [kinesis.put_record(StreamName=stream, PartitionKey="same-key", Data=f"h{i}".encode())
             for i in range(3)]  # boto3 over HTTP: the same shard's numbering
    seqs = [p["SequenceNumber"] for p in puts]
    assert {p["ShardId"] for p in puts} == {puts[0]["ShardId"]}
    assert all(len(s) == 56 and s.isdigit() and s[0] != "0" for s in seqs), seqs
    numbers = [int(s) for s in seqs]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert all(b - a > 1 for a, b in itertools.pairwise(numbers))  # not +1
    # equal length: string order is numeric order too
    assert seqs == sorted(seqs)


def test_get_records_and_iterators_see_the_put_numbers(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    stream = stack.resources["Stream"].ref
    kinesis = svc.client("kinesis")
    puts = [_put_in_process(svc, stream, i) for i in range(4)]
    shard = puts[0]["ShardId"]
    seqs = [p["SequenceNumber"] for p in puts]

    def read(kind: str, start: str | None = None) -> list[str]:
        kwargs: dict[str, Any] = {"StreamName": stream, "ShardId": shard,
                                  "ShardIteratorType": kind}
        if start is not None:
            kwargs["StartingSequenceNumber"] = start
        it = kinesis.get_shard_iterator(**kwargs)["ShardIterator"]
        return [r["SequenceNumber"] for r in kinesis.get_records(ShardIterator=it)["Records"]]

    assert read("TRIM_HORIZON")[-4:] == seqs
    assert read("AT_SEQUENCE_NUMBER", seqs[1]) == seqs[1:]
    assert read("AFTER_SEQUENCE_NUMBER", seqs[1]) == seqs[2:]


async def test_the_esm_source_reads_after_a_checkpoint(services: tuple[AwsServices, Any]) -> None:
    svc, stack = services
    stream = stack.resources["Stream"].ref
    stream_arn = stack.resources["Stream"].attributes["Arn"]
    puts = [_put_in_process(svc, stream, i) for i in range(3)]
    source = KinesisShardSource(svc, asyncio.get_running_loop())
    try:
        shard = puts[0]["ShardId"]
        assert source.latest_sequence(stream_arn, shard) == puts[-1]["SequenceNumber"]
        got = source.read(stream_arn, shard, after_sequence=puts[0]["SequenceNumber"],
                          at_timestamp=None, limit=10)
        assert [r.sequence_number for r in got] == [p["SequenceNumber"] for p in puts[1:]]
    finally:
        source.close()
