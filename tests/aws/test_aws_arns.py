"""Stream and consumer ARNs: what a mapping reads, and whether through a consumer."""

from __future__ import annotations

from pipeline.aws.arns import KinesisSourceArn, consumer_arn

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/frames"


def test_a_stream_arn_reads_the_stream_with_shared_throughput() -> None:
    source = KinesisSourceArn.parse(STREAM)
    assert source.stream_arn == STREAM
    assert source.consumer_name is None and not source.enhanced_fan_out


def test_a_consumer_arn_reads_its_stream_through_the_consumer() -> None:
    arn = consumer_arn(STREAM, "echo", 1700000000)
    assert arn == f"{STREAM}/consumer/echo:1700000000"  # AWS's shape
    source = KinesisSourceArn.parse(arn)
    assert source.stream_arn == STREAM
    assert source.consumer_name == "echo" and source.enhanced_fan_out
