"""ConsumerService: one microservice = enhanced fan-out consumer + Lambda + mapping + alarms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy, Tags
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pipeline.infrastructure.lambda_defaults import (
    ARCHITECTURE,
    RUNTIME,
    drop_redundant_role_dependency,
)
from pipeline.infrastructure.packaging import ASSET_EXCLUDES
from pipeline.names import CONNECTIONS_ENDPOINT_VARIABLE, CONSUMER_TAG, METRICS_NAMESPACE
from pipeline.registry import ConsumerSpec

ITERATOR_AGE_ALARM_MS = 60_000
# The API's client routes, comma-separated, for the $default consumer (consumers/fallback).
CLIENT_ROUTES_VARIABLE = "CLIENT_ROUTES"


def consumer_filter(spec: ConsumerSpec) -> dict[str, object]:
    """The mapping's one filter (docs/contracts.md): the envelope's routeKey.

    Kinesis event source mappings filter on ``data`` only, and a data pattern only matches JSON
    data; KPL-aggregated records (server-side publish) still match because the mapping reads
    through an enhanced fan-out consumer, for which Lambda applies the filter to the aggregated
    user records ("Filtering Kinesis aggregated records"):
    https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis-filtering.html
    """
    keys = spec.filter_route_keys
    return dict(
        lambda_.FilterCriteria.filter({"data": {"routeKey": lambda_.FilterRule.or_(*keys)}})
    )


def stream_consumer_name(stack_name: str, spec: ConsumerSpec) -> str:
    """The consumer's name: ``<stack>-<name>``, plus the starting position when it is not LATEST.

    ``StartingPosition`` is create-only on ``AWS::Lambda::EventSourceMapping``, so changing it
    replaces the mapping, and CloudFormation creates the replacement before it deletes the old
    one; Lambda refuses a second mapping of one function to one event source
    (``ResourceConflictException``: SAM issues #1320 and #1690, serverless #8550), and the
    update fails. With the starting position in the name, the change also replaces the stream
    consumer (``ConsumerName`` is create-only), so the new mapping reads a new consumer ARN and
    both mappings coexist until CloudFormation deletes the old pair (docs/adding-a-consumer.md,
    "Change where it starts reading"). LATEST, the default, keeps the name deployed stacks have.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-eventsourcemapping.html
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-kinesis-streamconsumer.html
    """
    base = f"{stack_name}-{spec.name}"
    if spec.starting_position == "LATEST":
        return base
    return f"{base}-{spec.starting_position.lower().replace('_', '-')}"


class ConsumerService(Construct):
    """The function of ``consumers/<name>/`` attached to its own stream consumer."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        spec: ConsumerSpec,
        stream: kinesis.IStream,
        api: apigwv2.WebSocketApi,
        connections_url: str,
        table: dynamodb.ITableV2,
        layer: lambda_.ILayerVersion,
        stream_consumer_name: str,
        client_routes: Sequence[str] = (),
        extra_environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.spec = spec
        self.consumer = kinesis.StreamConsumer(
            self, "StreamConsumer", stream=stream, stream_consumer_name=stream_consumer_name
        )
        environment = {
            "STREAM_NAME": stream.stream_name,
            CONNECTIONS_ENDPOINT_VARIABLE: connections_url,
            "POWERTOOLS_SERVICE_NAME": spec.name,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "LOG_LEVEL": "INFO",
            **(extra_environment or {}),
        }
        if spec.roster != "none":
            environment["ROSTER_TABLE_NAME"] = table.table_name
        if "$default" in spec.routes:  # its unknown_action frames list the API's routes
            environment[CLIENT_ROUTES_VARIABLE] = ",".join(client_routes)
        self.logs = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=spec.description or f"{spec.name} consumer",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(spec.directory), exclude=ASSET_EXCLUDES),
            layers=[layer],
            environment=environment,
            timeout=Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            log_group=self.logs,
        )
        # How tools (redrive) find a consumer's function, in a deployed stack or the template.
        Tags.of(self.function).add(CONSUMER_TAG, spec.name,
                                   include_resource_types=["AWS::Lambda::Function"])
        self.dlq = sqs.Queue(
            self,
            "OnFailure",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.function.add_event_source(
            sources.KinesisConsumerEventSource(
                self.consumer,
                starting_position=lambda_.StartingPosition[spec.starting_position],
                batch_size=spec.batch_size,
                max_batching_window=Duration.seconds(spec.batching_window_seconds),
                parallelization_factor=spec.parallelization_factor,
                report_batch_item_failures=True,
                bisect_batch_on_error=True,
                retry_attempts=spec.retry_attempts,
                max_record_age=Duration.seconds(spec.max_record_age_seconds),
                on_failure=sources.SqsDlq(self.dlq),
                filters=[consumer_filter(spec)],
            )
        )
        api.grant_manage_connections(self.function)
        if spec.fanout_page_size:  # it writes fan-out pages back to the stream
            stream.grant_write(self.function)
        if spec.roster == "read":
            table.grant_read_data(self.function)
        elif spec.roster == "readwrite":
            table.grant_read_write_data(self.function)
        self._alarms()
        drop_redundant_role_dependency(self.function)

    def _alarms(self) -> None:
        """Iterator age, on-failure queue depth and function errors; ``OperationsDashboard``
        sends them to the stage's alarm topic."""
        self.iterator_age_alarm_ms = ITERATOR_AGE_ALARM_MS
        self.alarms: list[cloudwatch.Alarm] = []
        self.alarms.append(cloudwatch.Alarm(
            self,
            "IteratorAgeAlarm",
            alarm_description=f"{self.spec.name}: records wait more than a minute on a shard",
            metric=self.function.metric(
                "IteratorAge", statistic="Maximum", period=Duration.minutes(1)
            ),
            threshold=ITERATOR_AGE_ALARM_MS,
            evaluation_periods=5,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ))
        self.alarms.append(cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description=f"{self.spec.name}: records were sent to the on-failure queue",
            metric=self.dlq.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=Duration.minutes(1)
            ),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ))
        # A failed invocation is retried and bisected, so one error is not yet a lost record;
        # errors in 3 of 5 minutes are a consumer that keeps failing.
        self.alarms.append(cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            alarm_description=f"{self.spec.name}: invocations keep failing",
            metric=self.function.metric_errors(statistic="Sum", period=Duration.minutes(1)),
            threshold=0,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ))
