"""The stack: wires the constructs, grants and outputs. No resource is configured here."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from pipeline.infrastructure.config import PipelineConfig
from pipeline.infrastructure.connect_auth import ConnectAuthorization
from pipeline.infrastructure.connection_roster import ConnectionRoster
from pipeline.infrastructure.consumer_service import ConsumerService, chain_stream_consumers
from pipeline.infrastructure.event_stream import EventStream
from pipeline.infrastructure.keepalive import KeepaliveRoute
from pipeline.infrastructure.lambda_defaults import ARCHITECTURE, RUNTIME
from pipeline.infrastructure.nag import acknowledge_stack_findings
from pipeline.infrastructure.operations_dashboard import OperationsDashboard
from pipeline.infrastructure.runtime_layer import RuntimeLayer
from pipeline.infrastructure.websocket_ingress import WebSocketIngress
from pipeline.registry import ConsumerSpec


class PipelineStack(Stack):
    """``WebSocketPipeline-<stage>``: ingress -> stream -> one service per registered consumer."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: PipelineConfig,
        consumers: Sequence[ConsumerSpec],
    ) -> None:
        super().__init__(
            scope,
            id,
            description="Serverless WebSocket API: API Gateway -> VTL -> Kinesis -> Lambda consumers",
        )
        self.config = config
        events = EventStream(
            self,
            "EventStream",
            shards=config.shards,
            retention_hours=config.retention_hours,
            retain=config.retain_stream,
            on_demand=config.stream_mode == "on-demand",
        )
        roster = ConnectionRoster(self, "ConnectionRoster")
        auth = ConnectAuthorization(self, "ConnectAuthorization", config=config)
        ingress = WebSocketIngress(
            self,
            "WebSocketIngress",
            config=config,
            stream=events.stream,
            table=roster.table,
            custom_routes=[route for spec in consumers for route in spec.api_routes],
            ack_routes=[route for spec in consumers for route in spec.ack_routes],
            connect_authorizer=auth.authorizer,
        )
        keepalive = KeepaliveRoute(self, "Keepalive", api=ingress.api)
        layer = RuntimeLayer(self, "RuntimeLayer", runtime=RUNTIME, architecture=ARCHITECTURE)
        client_routes = sorted(route for spec in consumers for route in spec.api_routes)
        self.services = [
            ConsumerService(
                self,
                f"Consumer-{spec.name}",
                spec=spec,
                stream=events.stream,
                api=ingress.api,
                connections_url=ingress.stage.callback_url,
                table=roster.table,
                layer=layer.layer,
                stream_consumer_name=f"{id}-{spec.name}",
                client_routes=client_routes,
            )
            for spec in consumers
        ]
        chain_stream_consumers(self.services)
        operations = OperationsDashboard(
            self, "Operations", stage_name=config.stage, stage=ingress.stage,
            services=self.services, alarm_email=config.alarm_email,
        )
        CfnOutput(self, "WebSocketUrl", value=ingress.stage.url)
        CfnOutput(self, "ConnectionsUrl", value=ingress.stage.callback_url)
        CfnOutput(self, "StreamName", value=events.stream.stream_name)
        CfnOutput(self, "RosterTableName", value=roster.table.table_name)
        if auth.secret is not None:
            CfnOutput(self, "TokenSecretArn", value=auth.secret.secret_arn)
        if auth.issuer is not None and auth.audience is not None:
            CfnOutput(self, "JwtIssuer", value=auth.issuer)
            CfnOutput(self, "JwtAudience", value=auth.audience)
        if auth.user_pool is not None and auth.user_pool_client is not None:
            CfnOutput(self, "UserPoolId", value=auth.user_pool.user_pool_id)
            CfnOutput(self, "UserPoolClientId", value=auth.user_pool_client.user_pool_client_id)
        CfnOutput(self, "AlarmTopicArn", value=operations.topic.topic_arn)
        acknowledge_stack_findings(ingress=ingress, auth=auth, services=self.services,
                                   operations=operations, keepalive=keepalive)
