"""IAM for Kinesis event source mappings: what Lambda checks when the mapping is created.

Lambda reads the stream with the function's execution role and sends failed batches to the
on-failure destination with it; ``CreateEventSourceMapping`` (so ``cdk deploy``) fails with
``InvalidParameterValueException`` when the role cannot
(https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html#events-kinesis-permissions,
https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html).
"""

from __future__ import annotations

from pipeline.aws.arns import KinesisSourceArn
from pipeline.local.iam.access import AccessControl

# Read permissions Lambda needs on the stream (on the consumer for enhanced fan-out reads).
_STREAM_ACTIONS = ("kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream",
                   "kinesis:ListShards")
_CONSUMER_ACTIONS = ("kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer")


def mapping_problems(access: AccessControl, role_arn: str, event_source_arn: str,
                     destination_arn: str | None = None) -> list[str]:
    """AWS's refusal messages for a mapping whose role lacks a permission (empty: fine)."""
    problems = []
    source = KinesisSourceArn.parse(event_source_arn)
    stream_arn = source.stream_arn
    allowed = [a for a in _STREAM_ACTIONS if access.decide(role_arn, a, stream_arn).allowed]
    if len(allowed) != len(_STREAM_ACTIONS):
        problems.append(
            f"Cannot access stream {stream_arn}. Please ensure the role can perform the "
            "GetRecords, GetShardIterator, DescribeStream, and ListShards Actions on your "
            "stream in IAM.")
    if source.enhanced_fan_out:
        allowed = [a for a in _CONSUMER_ACTIONS
                   if access.decide(role_arn, a, event_source_arn).allowed]
        if len(allowed) != len(_CONSUMER_ACTIONS):
            problems.append(
                f"Cannot access stream consumer {event_source_arn}. Please ensure the role can "
                "perform the SubscribeToShard and DescribeStreamConsumer Actions on your "
                "consumer in IAM.")
    sqs = bool(destination_arn and destination_arn.startswith("arn:aws:sqs:"))
    if sqs and not access.decide(role_arn, "sqs:SendMessage", str(destination_arn)).allowed:
        problems.append(
            "The provided execution role does not have permissions to call SendMessage on "
            f"SQS ({destination_arn}).")
    return problems
