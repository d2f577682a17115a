"""OperationsDashboard: the stage's CloudWatch dashboard and the SNS topic its alarms notify.

Per consumer: iterator age, errors and throttles, on-failure queue depth, and the runtime's own
EMF metrics (``pipeline/runtime/observability.py``: posts, 410 prunes, retries after 429/5xx,
per-stage latencies; Powertools adds the ``service`` dimension). For the API: connects,
messages, integration and client errors (``AWS/ApiGateway``, dimensions ``ApiId`` and ``Stage``:
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-logging.html).
The alarms themselves belong to each ``ConsumerService``; this construct only routes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from pipeline.infrastructure.consumer_service import ConsumerService
from pipeline.names import METRICS_NAMESPACE, stack_name
from pipeline.runtime import observability as names

PERIOD = Duration.minutes(1)
WIDTH = 6  # four widgets per dashboard row (24 columns)


LABELS = {
    names.POSTS_DELIVERED: "posts delivered", names.POSTS_FAILED: "posts failed",
    names.POSTS_GONE: "410 Gone", names.CONNECTIONS_PRUNED: "pruned after 410",
    names.POST_RETRIES: "retries (429, 5xx)",
}


def runtime_metric(service: str, name: str, statistic: str = "Sum") -> cloudwatch.Metric:
    """One of the runtime's EMF metrics for one consumer."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE, metric_name=name, dimensions_map={"service": service},
        statistic=statistic, period=PERIOD, label=LABELS.get(name),
    )


class OperationsDashboard(Construct):
    """``WebSocketPipeline-<stage>`` dashboard, and an alarm topic (``alarm_email`` subscribed)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stage_name: str,
        stage: apigwv2.WebSocketStage,
        services: Sequence[ConsumerService],
        alarm_email: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        # Server-side encryption is left off: CloudWatch alarms cannot publish to a topic under
        # the AWS managed SNS key (nag.py carries the finding with this reason).
        self.topic = sns.Topic(self, "AlarmTopic", display_name=f"{stage_name} pipeline alarms",
                               enforce_ssl=True)
        self._allow_cloudwatch_alarms()
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        for service in services:
            for alarm in service.alarms:
                alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=stack_name(stage_name),
            default_interval=Duration.hours(3),
        )
        self.dashboard.add_widgets(*self._api_widgets(stage))
        for service in services:
            self.dashboard.add_widgets(*self._consumer_widgets(service))

    def _allow_cloudwatch_alarms(self) -> None:
        """Let CloudWatch alarms of this account and region publish to the topic.

        ``enforce_ssl`` makes an ``AWS::SNS::TopicPolicy``, which replaces SNS's default topic
        policy; it then holds only the Deny, and ``SnsAction`` adds no Allow, so every alarm
        notification would fail with "not authorized to perform SNS:Publish" (AWS Knowledge
        Center "cloudwatch-receive-sns-for-alarm-trigger":
        https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger). The Allow
        names the service principal with ``aws:SourceAccount`` and ``aws:SourceArn`` (this
        account's alarms only), against the confused deputy, as SNS's policy examples do:
        https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html
        """
        stack = Stack.of(self)
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowCloudWatchAlarmsToPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[self.topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": stack.format_arn(
                    service="cloudwatch", resource="alarm", resource_name="*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME)},
            },
        ))

    @staticmethod
    def _api_widgets(stage: apigwv2.WebSocketStage) -> list[cloudwatch.IWidget]:
        def api(name: str) -> cloudwatch.Metric:
            return stage.metric(name, statistic="Sum", period=PERIOD)

        return [
            cloudwatch.TextWidget(markdown="## WebSocket API", width=24, height=1),
            cloudwatch.GraphWidget(title="API: connects", left=[api("ConnectCount")],
                                   width=WIDTH),
            cloudwatch.GraphWidget(title="API: messages", left=[api("MessageCount")],
                                   width=WIDTH),
            cloudwatch.GraphWidget(title="API: integration errors",
                                   left=[api("IntegrationError"), api("ExecutionError")],
                                   width=WIDTH),
            cloudwatch.GraphWidget(title="API: client errors", left=[api("ClientError")],
                                   width=WIDTH),
        ]

    @staticmethod
    def _consumer_widgets(service: ConsumerService) -> list[cloudwatch.IWidget]:
        name, fn = service.spec.name, service.function
        def emf(metric: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return runtime_metric(name, metric, statistic)

        latency = [emf(m, "p99") for m in (names.GATEWAY_TO_STREAM_MS,
                                            names.STREAM_TO_CONSUMER_MS,
                                            names.CONSUMER_TO_POST_MS, names.GATEWAY_TO_POST_MS)]
        return [
            cloudwatch.TextWidget(markdown=f"## Consumer `{name}`", width=24, height=1),
            cloudwatch.GraphWidget(
                title=f"{name}: iterator age (ms)",
                left=[fn.metric("IteratorAge", statistic="Maximum", period=PERIOD)],
                left_annotations=[cloudwatch.HorizontalAnnotation(
                    value=service.iterator_age_alarm_ms, label="alarm")],
                width=WIDTH),
            cloudwatch.GraphWidget(
                title=f"{name}: errors and throttles",
                left=[fn.metric_errors(period=PERIOD), fn.metric_throttles(period=PERIOD)],
                width=WIDTH),
            cloudwatch.GraphWidget(
                title=f"{name}: on-failure queue depth",
                left=[service.dlq.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=PERIOD)],
                width=WIDTH),
            cloudwatch.GraphWidget(
                title=f"{name}: posts",
                left=[emf(names.POSTS_DELIVERED), emf(names.POSTS_FAILED),
                      emf(names.POSTS_GONE), emf(names.CONNECTIONS_PRUNED),
                      emf(names.POST_RETRIES)],
                width=WIDTH),
            cloudwatch.GraphWidget(
                title=f"{name}: records",
                left=[emf(names.RECORDS_IN), emf(names.RECORDS_FAILED),
                      emf(names.RECORDS_UNDECODABLE)],
                width=WIDTH),
            cloudwatch.GraphWidget(title=f"{name}: stage latency p99 (ms)", left=latency,
                                   width=WIDTH),
        ]
