"""WebSocketIngress: the WebSocket API, its VTL integrations (no Lambda), stage and access logs.

``$connect`` writes the roster with DynamoDB ``PutItem``; ``$disconnect``, ``$default`` and every
consumer route put the frame on the stream with Kinesis ``PutRecord`` (partition key
``$context.connectionId``). Both are AWS (non-proxy) integrations rendered by the templates in
``integration_templates/``; the integrations are built in :meth:`WebSocketIngress._integration`
only.

Acked routes (``ackRoutes`` in a consumer's settings, docs/acks.md) are two-way: a route response
(``$default``) and their own PutRecord integration whose integration responses (L1
``CfnIntegrationResponse``) render the PutRecord result into an ack or nack frame to the sender.
Every other route stays one-way, with no response resources at all.
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import jsii
from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_logs as logs
from constructs import Construct

from pipeline.infrastructure import InfrastructureError
from pipeline.infrastructure.config import PipelineConfig
from pipeline.infrastructure.templates import (
    ACK_TEMPLATE,
    CONNECT_TEMPLATE,
    NACK_TEMPLATE,
    STREAM_TEMPLATE,
    render,
)

ROUTE_SELECTION_EXPRESSION = "$request.body.action"
# $connect's integration responses: the sample's /200/ and, on purpose, nothing else (no
# $default, no 4xx/5xx key). A failed roster PutItem then matches no integration response: an
# integration failure, and "If the $connect request fails (e.g., due to AuthN/AuthZ failure or
# an integration failure), the connection will not be made" (WS route-keys page, URL in
# _connect_responses). Refusing keeps the design's rule that a connection is in the roster
# before it can send; the client retries the connect with backoff. Issue 21, finding 5.
CONNECT_RESPONSE_KEYS: tuple[str, ...] = ("/200/",)
STREAM_ROUTES_ALWAYS = ("$disconnect", "$default")
# Integration response keys of the acked integration -> (template, what the status class says
# about retrying). Keys are regexes on the integration's HTTP status, "$default" the catch-all:
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-integration-responses.html
ACK_RESPONSES: dict[str, tuple[str, str]] = {
    "/2\\d\\d/": (ACK_TEMPLATE, ""),
    "/4\\d\\d/": (NACK_TEMPLATE, "false"),
    "/5\\d\\d/": (NACK_TEMPLATE, "true"),
    "$default": (NACK_TEMPLATE, "true"),
}

# Kinesis speaks JSON 1.1: AWS's Kinesis proxy tutorial maps this static header on every action
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/integrating-api-with-aws-services-kinesis.html),
# and aws-solutions-constructs sets its service's Content-Type the same way on WebSocket AWS
# integrations (core/lib/websocket-api-helper.ts, URL at `partition` below). AWS's sample for the
# DynamoDB $connect pattern (serverless-patterns apigw-websocket-api-connection-dynamodb) sets none,
# so the PutItem integration stays as that sample has it.
CONTENT_TYPE_PARAMETER = "integration.request.header.Content-Type"
KINESIS_CONTENT_TYPE = "application/x-amz-json-1.1"

# Access-log fields: only variables AWS lists for WebSocket access logging (checked against
# pipeline/infrastructure/websocket_context_variables.py by
# tests/infrastructure/test_infra_context_variables.py); API Gateway refuses an unsupported
# variable when it creates the stage. $context.integrationErrorMessage is an HTTP API variable;
# $context.integration.status/.error are left out: not every copy of AWS's page lists them.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "connectionId": "$context.connectionId",
    "routeKey": "$context.routeKey",
    "eventType": "$context.eventType",
    "status": "$context.status",
    "requestTime": "$context.requestTimeEpoch",
    "sourceIp": "$context.identity.sourceIp",
    "principal": "$context.authorizer.principalId",
    "error": "$context.error.message",
    "errorType": "$context.error.responseType",
    "integrationLatency": "$context.integrationLatency",
}


class WebSocketIngress(Construct):
    """The API (route selection ``$request.body.action``), its routes, stage and credentials role."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: PipelineConfig,
        stream: kinesis.IStream,
        table: dynamodb.ITableV2,
        custom_routes: Sequence[str],
        ack_routes: Sequence[str] = (),
        connect_authorizer: apigwv2.IWebSocketRouteAuthorizer | None = None,
    ) -> None:
        super().__init__(scope, id)
        region = Stack.of(self).region
        # The stack's partition, never a literal "arn:aws:" (aws-cn, aws-us-gov); as
        # aws-solutions-constructs builds WebSocket AWS integration URIs (websocket-api-helper.ts):
        # https://github.com/awslabs/aws-solutions-constructs/blob/main/source/patterns/@aws-solutions-constructs/core/lib/websocket-api-helper.ts
        partition = Stack.of(self).partition
        self.role = iam.Role(
            self,
            "IntegrationRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway integrations: PutRecord on the stream, PutItem on the roster",
        )
        # Exactly the two actions the templates call, on exactly these resources
        # (grant_write would add PutRecords, ListShards, DescribeStreamSummary...).
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["kinesis:PutRecord"], resources=[stream.stream_arn])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[table.table_arn])
        )
        if stream.encryption_key is not None:
            # Producers to a stream with a customer-managed key need GenerateDataKey on it
            # (the aws/kinesis key needs nothing).
            # https://docs.aws.amazon.com/streams/latest/dev/permissions-user-key-KMS.html
            stream.encryption_key.grant(self.role, "kms:GenerateDataKey")

        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            api_name=f"{config.stack_name}-ws",
            description="WebSocket front door: frames go to Kinesis through VTL, no Lambda",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
        )
        connect = self._integration(
            "ConnectPutItem",
            f"arn:{partition}:apigateway:{region}:dynamodb:action/PutItem",
            render(
                CONNECT_TEMPLATE,
                {
                    "TABLE_NAME": table.table_name,
                    "CONNECTION_TTL_SECONDS": str(config.connection_ttl_seconds),
                },
            ),
        )
        self.routes: dict[str, apigwv2.WebSocketRoute] = {}
        self.routes["$connect"] = self.api.add_route(
            "$connect", integration=connect, authorizer=connect_authorizer
        )
        self._connect_responses(self.routes["$connect"], "ConnectPutItem")
        to_stream = self._integration(
            "StreamPutRecord",
            f"arn:{partition}:apigateway:{region}:kinesis:action/PutRecord",
            render(STREAM_TEMPLATE, {"STREAM_NAME": stream.stream_name}),
            content_type=KINESIS_CONTENT_TYPE,
        )
        self.stream_routes: tuple[str, ...] = (
            *STREAM_ROUTES_ALWAYS,
            *sorted(set(custom_routes) - set(STREAM_ROUTES_ALWAYS)),
        )
        acked = sorted(set(ack_routes))
        unknown = set(acked) - set(self.stream_routes) | set(acked) & set(STREAM_ROUTES_ALWAYS)
        if unknown:
            raise InfrastructureError(f"ack routes {sorted(unknown)} are not custom stream routes")
        for route in self.stream_routes:
            if route not in acked:
                self.routes[route] = self.api.add_route(route, integration=to_stream)
        self.integrations = {"connect": connect, "stream": to_stream}
        if acked:
            # Its own integration: integration responses belong to an integration, and the
            # one-way routes' integration must stay without them.
            to_stream_acked = self._integration(
                "StreamPutRecordAcked",
                f"arn:{partition}:apigateway:{region}:kinesis:action/PutRecord",
                render(STREAM_TEMPLATE, {"STREAM_NAME": stream.stream_name}),
                content_type=KINESIS_CONTENT_TYPE,
            )
            for route in acked:
                # return_response=True: RouteResponseSelectionExpression + a $default RouteResponse.
                self.routes[route] = self.api.add_route(
                    route, integration=to_stream_acked, return_response=True
                )
            self.integrations["stream_acked"] = to_stream_acked
            self._ack_responses(self.routes[acked[0]], "StreamPutRecordAcked")


        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.logging_role, account = self._account_logging_role(config)
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=config.stage,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.throttle_rate_limit, burst_limit=config.throttle_burst_limit
            ),
            access_log_settings=_AccessLogSettings(self.access_logs),
        )
        if account is not None:
            self.stage.node.add_dependency(account)

    def _account_logging_role(
        self, config: PipelineConfig
    ) -> tuple[iam.Role | None, apigw.CfnAccount | None]:
        """API Gateway's account-level CloudWatch role, which access logging needs.

        It is ONE setting per account and region (``AWS::ApiGateway::Account``), not per stage:
        https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html and
        https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-apigateway-account.html
        With ``apiGatewayAccountRole=create`` (default) this stack sets it and RETAINS both the
        setting and the role, so deleting one stage's stack never unsets or deletes the role
        another stage's logging uses (the last stack to deploy wins; every such role carries the
        same managed policy). ``existing`` creates neither, for a region where it is already set.
        """
        if config.api_gateway_account_role == "existing":
            return None, None
        role = iam.Role(
            self,
            "CloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway account-level CloudWatch Logs role (retained on delete)",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        account = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=role.role_arn)
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        return role, account

    def _connect_responses(self, route: apigwv2.WebSocketRoute, integration_id: str) -> None:
        """``$connect``'s route response and integration response, as AWS's own sample for a
        DynamoDB PutItem ``$connect`` declares them (serverless-patterns
        ``apigw-websocket-api-connection-dynamodb/template.yaml``: RouteResponse ``$default``,
        IntegrationResponse ``/200/`` with no template), and only those: a failed PutItem
        matches no integration response, so the connect is refused (``CONNECT_RESPONSE_KEYS``;
        the twin's ``--connect-failure refuse``, its default). Nothing leaks either way: a
        refused connect has no connection and no ``$disconnect``; a write that succeeded
        for a connect refused later (a timeout) leaves a META item the TTL removes; under the
        other reading (connected without its META item) the connection is pruned on its first
        410 and its memberships carry the TTL (docs/fidelity.md "Unverified on AWS").
        https://github.com/aws-samples/serverless-patterns/tree/main/apigw-websocket-api-connection-dynamodb
        """
        bound = route.node.find_child(integration_id)
        assert isinstance(bound, apigwv2.WebSocketIntegration)
        apigwv2.CfnRouteResponse(
            self,
            "ConnectRouteResponse",
            api_id=self.api.api_id,
            route_id=route.route_id,
            route_response_key="$default",
        )
        (key,) = CONNECT_RESPONSE_KEYS
        apigwv2.CfnIntegrationResponse(
            self,
            "ConnectIntegrationResponse",
            api_id=self.api.api_id,
            integration_id=bound.integration_id,
            integration_response_key=key,
            template_selection_expression="\\$default",
        )

    def _ack_responses(self, first_route: apigwv2.WebSocketRoute, integration_id: str) -> None:
        """The acked integration's responses: ack on 2xx, nack on anything else."""
        # CDK creates the integration under the first route it is bound to.
        bound = first_route.node.find_child(integration_id)
        assert isinstance(bound, apigwv2.WebSocketIntegration)
        for n, (key, (template, retryable)) in enumerate(ACK_RESPONSES.items()):
            values = {"RETRYABLE_BY_STATUS": retryable} if retryable else {}
            apigwv2.CfnIntegrationResponse(
                self,
                f"AckResponse{n}",
                api_id=self.api.api_id,
                integration_id=bound.integration_id,
                integration_response_key=key,
                response_templates={"$default": render(template, values)},
                template_selection_expression="\\$default",
            )

    def _integration(
        self, id: str, uri: str, template: str, *, content_type: str | None = None
    ) -> integrations.WebSocketAwsIntegration:
        """One AWS integration with exactly one request template under ``$default``.

        ``content_type`` becomes a static ``Content-Type`` request header (a quoted literal in
        ``RequestParameters``), the media type of the service's JSON protocol.
        """
        parameters = (
            {CONTENT_TYPE_PARAMETER: f"'{content_type}'"} if content_type is not None else None
        )
        return integrations.WebSocketAwsIntegration(
            id,
            integration_uri=uri,
            integration_method="POST",
            credentials_role=self.role,
            request_templates={"$default": template},
            template_selection_expression="\\$default",
            passthrough_behavior=apigwv2.PassthroughBehavior.NEVER,
            request_parameters=parameters,
        )


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """``IAccessLogSettings``: JSON lines into a CloudWatch log group."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format
