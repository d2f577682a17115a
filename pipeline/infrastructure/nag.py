"""cdk-nag (AwsSolutions) on every synth, and the acknowledged findings with their reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Stage, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

if TYPE_CHECKING:
    from aws_cdk import aws_lambda as lambda_

    from pipeline.infrastructure.connect_auth import ConnectAuthorization
    from pipeline.infrastructure.consumer_activation import ConsumerActivation
    from pipeline.infrastructure.consumer_service import ConsumerService
    from pipeline.infrastructure.keepalive import KeepaliveRoute, WhoamiRoute
    from pipeline.infrastructure.operations_dashboard import OperationsDashboard
    from pipeline.infrastructure.websocket_ingress import WebSocketIngress

BASIC_EXECUTION_ROLE = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSLambdaBasicExecutionRole]"
)


def enable_nag(app: Stage) -> None:
    """Run AwsSolutionsChecks as a validation plugin: any unacknowledged finding fails the synth.

    cdk-nag 3.x is a validation plugin, not an Aspect. Acknowledged findings are written to
    each resource's ``Metadata.cdk_nag.rules_to_suppress`` (id + reason) as an audit trail.
    """
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    )


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding (``Rule`` or ``Rule[Finding]``) on ``scope`` and below."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_stack_findings(
    *,
    ingress: WebSocketIngress,
    auth: ConnectAuthorization,
    services: Sequence[ConsumerService],
    operations: OperationsDashboard | None = None,
    keepalive: KeepaliveRoute | None = None,
    whoami: WhoamiRoute | None = None,
    roster_table: IConstruct | None = None,
    activation: ConsumerActivation | None = None,
) -> None:
    """Every accepted finding of the stack, each with a one-line reason."""
    if activation is not None:
        _activation_findings(activation)
    if keepalive is not None:
        acknowledge(
            keepalive.route,
            "AwsSolutions-APIG4",
            "WebSocket APIs authorize once, on $connect; ping rides that connection",
        )
    if whoami is not None:
        acknowledge(
            whoami.route,
            "AwsSolutions-APIG4",
            "WebSocket APIs authorize once, on $connect; whoami rides that connection",
        )
    for route_key, route in ingress.routes.items():
        if route_key != "$connect":
            acknowledge(
                route,
                "AwsSolutions-APIG4",
                "WebSocket APIs authorize once, on $connect; later frames ride that connection",
            )
        elif auth.mode == "none":
            acknowledge(
                route,
                "AwsSolutions-APIG4",
                "auth=none was chosen for this stage (dev default); prod defaults to auth=jwt",
            )
    if ingress.logging_role is not None:
        acknowledge(
            ingress.logging_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "the documented managed policy for API Gateway's account-level logging role",
        )
    for service in services:
        _function_findings(service.function)
        acknowledge(
            service.function,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
            f"<AWS::AccountId>:<{_logical_id(ingress.api)}>/*/*/@connections/*]",
            "grant_manage_connections: any connection id of this one API and its stages",
        )
        if roster_table is not None and service.spec.roster != "none":
            acknowledge(
                service.function,
                f"AwsSolutions-IAM5[Resource::<{_logical_id(roster_table)}.Arn>/index/*]",
                "the roster's own indexes (byPrincipal: send to a user), granted with the table",
            )
        acknowledge(
            service.dlq,
            "AwsSolutions-SQS3",
            "this queue is itself the on-failure destination (DLQ) of the event source mapping",
        )
    if operations is not None:
        acknowledge(
            operations.topic,
            "AwsSolutions-SNS2",
            "alarm notifications only; CloudWatch alarms cannot publish to a topic encrypted "
            "with the AWS managed SNS key",
        )
    if auth.function is not None:
        _function_findings(auth.function)
    if auth.user_pool is not None:
        acknowledge(
            auth.user_pool,
            "AwsSolutions-COG2",
            "TOTP MFA is offered (optional); requiring it is the app owner's sign-in policy",
        )
        acknowledge(
            auth.user_pool,
            "AwsSolutions-COG8",
            "the Plus feature plan is billed per monthly active user; threat protection is opt-in",
        )
    if auth.secret is not None:
        acknowledge(
            auth.secret,
            "AwsSolutions-SMG4",
            "HS256 signing key: rotating it would revoke every issued token; rotate by redeploy",
        )


def _activation_findings(activation: ConsumerActivation) -> None:
    """The consumers-ACTIVE waiter: its two inline functions and CDK's provider framework."""
    for function in activation.functions:
        _function_findings(function)
    acknowledge(
        activation.functions[1],
        f"AwsSolutions-IAM5[Resource::<{activation.stream_logical_id}.Arn>/consumer/*]",
        "DescribeStreamConsumer on this stream's consumers; naming each ARN would make the "
        "waiter depend on its waiters",
    )
    provider = activation.provider
    acknowledge(
        provider,
        BASIC_EXECUTION_ROLE,
        "CDK's custom resource provider framework: its functions only write their own logs",
    )
    framework = [provider.node.find_child(name) for name in
                 ("framework-isComplete", "framework-onTimeout")]
    for invoked in (*activation.functions, *framework):
        acknowledge(
            provider,
            f"AwsSolutions-IAM5[Resource::<{_logical_id(invoked)}.Arn>:*]",
            "CDK's provider framework invokes any version of its own functions",
        )
    acknowledge(
        provider,
        "AwsSolutions-L1",
        "CDK's provider framework picks its own Node.js runtime (updated with aws-cdk-lib)",
    )
    acknowledge(
        provider,
        "AwsSolutions-IAM5[Resource::*]",
        "waiter state machine log delivery: logs:*LogDelivery takes only Resource * "
        "(Step Functions guide, cw-logs-auth)",
    )
    acknowledge(
        provider,
        "AwsSolutions-SF2",
        "the waiter state machine runs once per deploy; X-Ray adds nothing to a poll loop",
    )


def _function_findings(function: lambda_.Function) -> None:
    acknowledge(
        function,
        BASIC_EXECUTION_ROLE,
        "AWSLambdaBasicExecutionRole only allows writing the function's own CloudWatch logs",
    )
    acknowledge(
        function,
        "AwsSolutions-L1",
        "Python 3.12 on purpose: the shared layer's wheels are built for cp312 (contracts.md)",
    )


def _logical_id(construct: IConstruct) -> str:
    from aws_cdk import CfnElement, Stack

    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    return str(Stack.of(construct).resolve(child.logical_id))
