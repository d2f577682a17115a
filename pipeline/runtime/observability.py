"""Structured JSON logs and CloudWatch metrics (EMF) through Powertools, one pair per container."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from pipeline.names import METRICS_NAMESPACE

__all__ = ["MetricUnit", "logger", "metrics"]

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "consumer"))
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE),
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "consumer"),
)

# Metric names (one place, so dashboards and tests agree).
RECORDS_IN = "RecordsIn"
RECORDS_FAILED = "RecordsFailed"
RECORDS_SKIPPED = "RecordsSkippedAfterFailure"
RECORDS_UNDECODABLE = "RecordsUndecodable"
POSTS_DELIVERED = "RepliesOut"
POSTS_GONE = "PostsGone"
POSTS_TOO_LARGE = "PostsTooLarge"
POSTS_FAILED = "PostsFailed"
POST_RETRIES = "PostRetries"
CONNECTIONS_PRUNED = "ConnectionsPruned"
# Per-stage latency: gateway requestTimeEpoch -> stream arrival -> consumer start -> post done.
GATEWAY_TO_STREAM_MS = "GatewayToStreamMs"
STREAM_TO_CONSUMER_MS = "StreamToConsumerMs"
CONSUMER_TO_POST_MS = "ConsumerToPostMs"
GATEWAY_TO_POST_MS = "GatewayToPostMs"


def count(name: str, value: float = 1) -> None:
    """Add to a count metric (call from the invocation's thread only: Metrics is not locked)."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def latency(name: str, ms: float) -> None:
    """Record one latency sample in milliseconds (negative clock skew is clamped to 0)."""
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=max(0.0, ms))
