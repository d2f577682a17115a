"""ConsumerActivation: more than 5 stream consumers, registered at most 5 at a time.

Kinesis lets at most 5 consumers be CREATING at once; a 6th RegisterStreamConsumer gets
LimitExceededException:
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_RegisterStreamConsumer.html
Ordering consumer ``i`` after consumer ``i - 5`` is not enough, because
``AWS::Kinesis::StreamConsumer`` reports CREATE_COMPLETE while the consumer is still CREATING
(aws-cdk PR #37108; cloudformation-coverage-roadmap #2442). So the consumers go in groups of 5
and, between two groups, a custom resource (``Custom::StreamConsumersActive``) completes only
when DescribeStreamConsumer says ACTIVE for every consumer of the group before (a provider with
an ``isComplete`` handler, polled every :data:`QUERY_INTERVAL`):
https://docs.aws.amazon.com/cdk/api/v2/python/aws_cdk.custom_resources/Provider.html
Deletes follow the dependencies in reverse (the waiter's Delete completes at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aws_cdk import CfnResource, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from pipeline.infrastructure.lambda_defaults import (
    ARCHITECTURE,
    RUNTIME,
    drop_redundant_role_dependency,
)

if TYPE_CHECKING:
    from pipeline.infrastructure.consumer_service import ConsumerService

CONSUMERS_CREATING_AT_ONCE = 5
WAITER_RESOURCE_TYPE = "Custom::StreamConsumersActive"
# A consumer usually turns ACTIVE within seconds; 10 s polls keep the waiter's cost negligible
# (one DescribeStreamConsumer per consumer per poll; Kinesis allows 20/s per account).
QUERY_INTERVAL = Duration.seconds(10)
TOTAL_TIMEOUT = Duration.minutes(30)
HANDLER_SOURCE = Path(__file__).parent / "consumer_waiter" / "handler.py"
INLINE_CODE_LIMIT = 4096  # CloudFormation's ZipFile limit for inline function code


class ConsumerActivation(Construct):
    """One provider (two small inline functions) and one waiter per group boundary."""

    def __init__(self, scope: Construct, id: str, *, stream: kinesis.IStream) -> None:
        super().__init__(scope, id)
        source = HANDLER_SOURCE.read_text()
        if len(source.encode()) > INLINE_CODE_LIMIT:
            raise ValueError(f"{HANDLER_SOURCE} is over CloudFormation's 4 KiB inline limit")
        code = lambda_.Code.from_inline(source)  # no asset: nothing to bundle, no Docker
        self.logs = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_WEEK,
                                  removal_policy=RemovalPolicy.DESTROY)
        self.functions: list[lambda_.Function] = []
        for name in ("on_event", "is_complete"):
            function = lambda_.Function(
                self, name.title().replace("_", ""), runtime=RUNTIME, architecture=ARCHITECTURE,
                handler=f"index.{name}", code=code, timeout=Duration.seconds(30),
                description=f"stream consumers ACTIVE waiter: {name}", log_group=self.logs,
            )
            self.functions.append(function)
        # The consumer ARNs are not known before the consumers exist, and naming them here
        # would make the waiter's functions depend on consumers that wait for the waiter.
        self.functions[1].add_to_role_policy(iam.PolicyStatement(
            actions=["kinesis:DescribeStreamConsumer"],
            resources=[f"{stream.stream_arn}/consumer/*"],
        ))
        self.provider = cr.Provider(
            self, "Provider", on_event_handler=self.functions[0],
            is_complete_handler=self.functions[1], query_interval=QUERY_INTERVAL,
            total_timeout=TOTAL_TIMEOUT, log_group=self.logs,
            # every state logged (cdk-nag SF1), without the events' data
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=cr.LogOptions(
                destination=self.logs, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        stream_resource = stream.node.default_child
        assert isinstance(stream_resource, CfnResource)
        self.stream_logical_id = str(Stack.of(self).resolve(stream_resource.logical_id))
        for child in self.node.find_all():  # ours and the framework's (cfn-lint W3005)
            if isinstance(child, lambda_.Function):
                drop_redundant_role_dependency(child)
            elif isinstance(child, sfn.CfnStateMachine):  # the same for the waiter machine
                role = child.node.scope.node.try_find_child("Role") if child.node.scope else None
                policies = [Stack.of(self).get_logical_id(p) for p in
                            (role.node.find_all() if role is not None else [])
                            if isinstance(p, iam.CfnPolicy)]
                child.add_override("DependsOn", policies)
        self.waiters: list[CustomResource] = []

    def wait_for(self, id: str, consumers: Sequence[kinesis.StreamConsumer]) -> CustomResource:
        """A resource that completes once every consumer of ``consumers`` is ACTIVE."""
        waiter = CustomResource(
            self, id, service_token=self.provider.service_token,
            resource_type=WAITER_RESOURCE_TYPE,
            properties={"ConsumerArns": [c.stream_consumer_arn for c in consumers]},
        )
        self.waiters.append(waiter)
        return waiter


def stagger_stream_consumers(
    scope: Construct, services: Sequence[ConsumerService], *, stream: kinesis.IStream,
    at_once: int = CONSUMERS_CREATING_AT_ONCE,
) -> ConsumerActivation | None:
    """Group the services' consumers by ``at_once``; every consumer of group ``k + 1`` depends
    on a waiter for group ``k`` being ACTIVE. None (nothing added) for ``at_once`` or fewer."""
    if len(services) <= at_once:
        return None
    activation = ConsumerActivation(scope, "ConsumerActivation", stream=stream)
    for start in range(at_once, len(services), at_once):
        group = [s.consumer for s in services[start - at_once:start]]
        waiter = activation.wait_for(f"Group{start // at_once}Active", group)
        for later in services[start:start + at_once]:
            later.consumer.node.add_dependency(waiter)
    return activation
