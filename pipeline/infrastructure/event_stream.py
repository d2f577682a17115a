"""EventStream: the provisioned, KMS-encrypted Kinesis stream every frame lands on."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct


class EventStream(Construct):
    """A provisioned stream with ``shards`` shards and retention, encrypted with ``aws/kinesis``.

    The AWS managed key needs no key policy and no KMS permissions for producers or consumers
    (https://docs.aws.amazon.com/streams/latest/dev/what-is-sse.html), which keeps the API
    Gateway role to exactly ``kinesis:PutRecord``; cdk-nag (KDS3) prefers it too.

    ``retain``: keep the stream when the stack is deleted (prod's default, docs/deploy.md). A
    retained stream keeps its records and keeps costing shard-hours until it is deleted by hand
    (https://aws.amazon.com/kinesis/data-streams/pricing/); every other stage deletes it.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        shards: int,
        retention_hours: int,
        retain: bool = False,
        on_demand: bool = False,
    ) -> None:
        super().__init__(scope, id)
        # On-demand: AWS manages the shards (a new stream starts with 4), so no ShardCount.
        self.stream = kinesis.Stream(
            self,
            "Stream",
            shard_count=None if on_demand else shards,
            stream_mode=kinesis.StreamMode.ON_DEMAND if on_demand
            else kinesis.StreamMode.PROVISIONED,
            retention_period=Duration.hours(retention_hours),
            encryption=kinesis.StreamEncryption.MANAGED,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )
