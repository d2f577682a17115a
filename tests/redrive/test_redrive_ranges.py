"""On-failure messages and the records they stand for (pure, no I/O)."""

from __future__ import annotations

import json

import pytest

from pipeline.local.esm.interfaces import StoredRecord
from pipeline.redrive import RedriveError
from pipeline.redrive.ranges import FailedRange, select

# 56-digit decimal sequence numbers, as Kinesis writes them: compared as integers, never as text
BASE = 49_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000


def seq(i: int) -> str:
    return str(BASE + i)


def message(start: int, end: int, size: int) -> str:
    # The shape Lambda sends to an on-failure destination for a Kinesis batch
    # (https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html)
    return json.dumps({
        "requestContext": {"condition": "RetryAttemptsExhausted"},
        "KinesisBatchInfo": {"shardId": "shardId-000000000000", "startSequenceNumber": seq(start),
                             "endSequenceNumber": seq(end), "batchSize": size,
                             "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"},
    })


def record(i: int, route: str) -> StoredRecord:
    return StoredRecord(seq(i), "pk", json.dumps({"routeKey": route}).encode(), 0.0)


ECHO_ONLY = ({"data": {"routeKey": ["echo"]}},)


def test_only_the_mappings_records_inside_the_range_are_selected() -> None:
    failed = FailedRange.from_message(message(2, 6, 2))
    shard = [record(i, "echo" if i % 2 == 0 else "send") for i in range(0, 10)]
    chosen = select(failed, shard, ECHO_ONLY)
    assert [r.sequence_number for r in chosen.records] == [seq(2), seq(4), seq(6)]
    assert chosen.complete


def test_sequence_numbers_compare_as_integers_not_text() -> None:
    # "9..." sorts after "10..." as text; as integers 9 < 10
    failed = FailedRange("shardId-0", "9", "10", 2, "")
    chosen = select(failed, [StoredRecord("10", "k", b'{"routeKey":"echo"}', 0),
                             StoredRecord("9", "k", b'{"routeKey":"echo"}', 0)], ECHO_ONLY)
    assert [r.sequence_number for r in chosen.records] == ["9", "10"] and chosen.complete


def test_a_range_past_retention_is_reported_lost_with_its_bounds() -> None:
    failed = FailedRange.from_message(message(2, 8, 4))
    # records 2 and 4 were trimmed; 6 and 8 are still on the shard
    part = select(failed, [record(6, "echo"), record(8, "echo")], ECHO_ONLY)
    assert (part.lost_count, part.lost_from, part.lost_to) == (2, seq(2), seq(5))
    assert [r.sequence_number for r in part.records] == [seq(6), seq(8)]
    gone = select(failed, [], ECHO_ONLY)
    assert (gone.lost_count, gone.lost_from, gone.lost_to) == (4, seq(2), seq(8))


@pytest.mark.parametrize("body", ["not json", "{}", json.dumps({"KinesisBatchInfo": {
    "shardId": "s", "startSequenceNumber": "5", "endSequenceNumber": "4", "batchSize": 1}})])
def test_other_messages_are_refused(body: str) -> None:
    with pytest.raises(RedriveError):
        FailedRange.from_message(body)
