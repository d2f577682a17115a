"""Custom resource handlers: complete only when every listed stream consumer is ACTIVE.

``AWS::Kinesis::StreamConsumer`` reports CREATE_COMPLETE while the consumer is still CREATING
(aws-cdk PR #37108, cloudformation-coverage-roadmap #2442), and Kinesis refuses a 6th
RegisterStreamConsumer while 5 are CREATING (LimitExceededException):
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_RegisterStreamConsumer.html
The provider framework calls ``is_complete`` every query interval until it returns true.
Shipped as inline code (no asset, no Docker, boto3 from the Lambda runtime): keep it < 4 KiB.
"""

from __future__ import annotations

from typing import Any

ACTIVE = "ACTIVE"
_client: Any = None


def on_event(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    """Nothing to start: the consumers register themselves; keep one physical id."""
    return {"PhysicalResourceId": event.get("PhysicalResourceId")
            or f"{event['LogicalResourceId']}-consumers-active"}


def is_complete(event: dict[str, Any], context: object = None,
                client: Any = None) -> dict[str, Any]:
    """True once DescribeStreamConsumer says ACTIVE for every ``ConsumerArns`` entry."""
    if event.get("RequestType") == "Delete":
        return {"IsComplete": True}
    kinesis = client or _kinesis()
    arns = event.get("ResourceProperties", {}).get("ConsumerArns", [])
    for arn in arns:
        answer = kinesis.describe_stream_consumer(ConsumerARN=arn)
        status = answer["ConsumerDescription"]["ConsumerStatus"]
        if status != ACTIVE:
            print(f"waiting: {arn} is {status}")
            return {"IsComplete": False}
    return {"IsComplete": True}


def _kinesis() -> Any:
    global _client
    if _client is None:
        import boto3

        _client = boto3.client("kinesis")
    return _client
