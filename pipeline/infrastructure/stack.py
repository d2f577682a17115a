"""The stack: wires the constructs, grants and outputs. No resource is configured here."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from pipeline.aws.limits import KINESIS_ON_DEMAND_INITIAL_SHARDS
from pipeline.infrastructure import ConfigError
from pipeline.infrastructure.config import PipelineConfig
from pipeline.infrastructure.connect_auth import ConnectAuthorization
from pipeline.infrastructure.connection_roster import ConnectionRoster
from pipeline.infrastructure.consumer_activation import stagger_stream_consumers
from pipeline.infrastructure.consumer_service import ConsumerService, stream_consumer_name
from pipeline.infrastructure.event_stream import EventStream
from pipeline.infrastructure.keepalive import KeepaliveRoute, WhoamiRoute
from pipeline.infrastructure.lambda_defaults import ARCHITECTURE, RUNTIME
from pipeline.infrastructure.nag import acknowledge_stack_findings
from pipeline.infrastructure.operations_dashboard import OperationsDashboard
from pipeline.infrastructure.runtime_layer import RuntimeLayer
from pipeline.infrastructure.websocket_ingress import WebSocketIngress
from pipeline.names import FANOUT_ROUTE
from pipeline.registry import ConsumerSpec

# A batch of pages must be posted well within the function's timeout at the container's rate,
# or its last posts would fail with DeadlineExceeded (logged, not retried: lost).
FANOUT_TIMEOUT_SHARE = 0.8


def initial_shards(config: PipelineConfig) -> int:
    """The shards the stream starts with: ``shards``, or 4 for an on-demand stream
    (https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html)."""
    return KINESIS_ON_DEMAND_INITIAL_SHARDS if config.stream_mode == "on-demand" else config.shards


def posting_environment(spec: ConsumerSpec, consumers: Sequence[ConsumerSpec],
                        config: PipelineConfig) -> dict[str, str]:
    """A function's share of the @connections quota and, for a fan-out producer, the shape of
    its pages (docs/protocol.md "Broadcast at scale").

    ``connectionsRps`` is split between the functions by ``connectionsRpsWeight``
    (``CONNECTIONS_RPS_SHARE``), and a function's share between its concurrent invocations
    (open shards x ParallelizationFactor). The open shard count changes (on-demand growth,
    UpdateShardCount: issue 21 finding 2), so the runtime reads it (``pipeline.runtime.
    shardcount``) and divides; ``CONNECTIONS_RPS`` and ``FANOUT_SHARDS`` are the values at the
    stream's initial count, used until the first reading."""
    env: dict[str, str] = {}
    shards = initial_shards(config)
    total = sum(c.connections_rps_weight for c in consumers)
    if spec.connections_rps_weight and total:
        share = config.connections_rps * spec.connections_rps_weight / total
        per_container = max(1.0, share / (shards * spec.parallelization_factor))
        env["CONNECTIONS_RPS"] = f"{per_container:.3f}"
        env["CONNECTIONS_RPS_SHARE"] = f"{share:.3f}"
        env["PARALLELIZATION_FACTOR"] = str(spec.parallelization_factor)
        if FANOUT_ROUTE in spec.server_route_keys:
            _check_page_pace(spec, consumers, per_container, config)
        else:
            _check_batch_pace(spec, per_container, config)
    if spec.fanout_page_size:
        tier = [c for c in consumers if FANOUT_ROUTE in c.server_route_keys]
        env["FANOUT_PAGE_SIZE"] = str(spec.fanout_page_size)
        env["FANOUT_SHARDS"] = str(shards)
        env["FANOUT_PARALLELIZATION"] = str(tier[0].parallelization_factor if tier else 1)
    if env:
        coalescers = [c for c in consumers if c.presence_window_ms]
        env["PRESENCE_MAX_MEMBERS"] = str(coalescers[0].presence_max_members if coalescers
                                          else spec.presence_max_members)
    if env:  # it reads the stream's open shard count: how many containers read it per shard
        env["STREAM_SHARDS"] = str(shards)
        env["SHARD_COUNT_READERS_PER_SHARD"] = str(sum(
            c.parallelization_factor for c in consumers
            if (c.connections_rps_weight and total) or c.fanout_page_size))
    return env


def _check_page_pace(tier: ConsumerSpec, consumers: Sequence[ConsumerSpec],
                     per_container: float, config: PipelineConfig) -> None:
    """Refuse a synth whose fan-out batches could not be posted before the timeout."""
    page = max((c.fanout_page_size for c in consumers), default=0)
    _refuse_a_slow_batch(
        tier, tier.batch_size * page, per_container, config,
        f"a batch of {tier.batch_size} pages of {page} recipients takes at most "
        f"{FANOUT_TIMEOUT_SHARE:.0%} of the {tier.name} timeout",
        f"raise connectionsRps, or lower fanoutPageSize or the {tier.name} batchSize")


def worst_posts_per_record(spec: ConsumerSpec) -> int:
    """The most posts one record of a (non fan-out tier) function makes: its reply, plus, for
    a fan-out producer that posts small rooms itself (chat), up to one page of recipients;
    a larger room goes to the fan-out tier."""
    return 1 + spec.fanout_page_size


def _check_batch_pace(spec: ConsumerSpec, per_container: float,
                      config: PipelineConfig) -> None:
    """Refuse a synth where a function's worst-case batch of posts could not finish within
    its timeout at its share of the @connections quota (a batch that times out is retried and
    re-delivers what it had posted)."""
    per_record = worst_posts_per_record(spec)
    _refuse_a_slow_batch(
        spec, spec.batch_size * per_record, per_container, config,
        f"{spec.name}'s worst-case batch ({spec.batch_size} records x {per_record} posts) "
        f"takes at most {FANOUT_TIMEOUT_SHARE:.0%} of its timeout",
        "raise connectionsRps or its connectionsRpsWeight, or lower its batchSize or "
        "fanoutPageSize")


def _refuse_a_slow_batch(spec: ConsumerSpec, posts: int, per_container: float,
                         config: PipelineConfig, batch: str, remedy: str) -> None:
    """ConfigError when *posts* at *per_container* posts/s take more than the timeout share."""
    seconds = posts / per_container
    if seconds > FANOUT_TIMEOUT_SHARE * spec.timeout_seconds:
        raise ConfigError(
            "connectionsRps", config.connections_rps,
            f"a rate at which {batch} ({spec.timeout_seconds} s; it would take {seconds:.0f} s "
            f"at {per_container:.1f} posts/s per invocation): {remedy}")


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
        whoami = WhoamiRoute(self, "Whoami", api=ingress.api)
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
                stream_consumer_name=stream_consumer_name(id, spec),
                client_routes=client_routes,
                extra_environment=posting_environment(spec, consumers, config),
            )
            for spec in consumers
        ]
        activation = stagger_stream_consumers(self, self.services, stream=events.stream)
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
                                   operations=operations, keepalive=keepalive, whoami=whoami,
                                   roster_table=roster.table, activation=activation)
