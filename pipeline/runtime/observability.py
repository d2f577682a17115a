"""Structured JSON logs and CloudWatch metrics (EMF) through Powertools, one pair per container.

The runtime's own per-record metrics (counts and stage latencies, several per record) are kept
in :data:`pending` and written once per invocation by :func:`flush`: Powertools' ``add_metric``
validates and logs on every call (~8 µs each here, six per echo record, a third of the worker's
CPU per record). What reaches CloudWatch is the same metrics, dimensions and namespace: a count
is one value per invocation (its sum: the dashboards read Sum), a latency keeps every sample
(percentiles need them), at most 100 values per metric in one EMF document, as EMF allows.
"""

from __future__ import annotations

import json
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from pipeline.names import METRICS_NAMESPACE

__all__ = ["MetricUnit", "flush", "logger", "metrics", "pending"]

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

EMF_MAX_VALUES = 100  # values of one metric in one EMF document (CloudWatch's limit)


class PendingMetrics:
    """The invocation's counts (summed) and latency samples, until :func:`flush`."""

    __slots__ = ("counts", "samples")

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.samples: dict[str, list[float]] = {}

    def documents(self) -> list[dict[str, dict[str, object]]]:
        """Metric sets in Powertools' shape, each metric with at most 100 values per set."""
        sets: list[dict[str, dict[str, object]]] = [{}]
        for name, total in self.counts.items():
            sets[0][name] = {"Unit": MetricUnit.Count.value, "StorageResolution": 60,
                             "Value": [total]}
        for name, values in self.samples.items():
            for i in range(0, len(values), EMF_MAX_VALUES):
                n = i // EMF_MAX_VALUES
                if n == len(sets):
                    sets.append({})
                sets[n][name] = {"Unit": MetricUnit.Milliseconds.value,
                                 "StorageResolution": 60,
                                 "Value": values[i:i + EMF_MAX_VALUES]}
        return [s for s in sets if s]

    def clear(self) -> None:
        self.counts.clear()
        self.samples.clear()


pending = PendingMetrics()


def count(name: str, value: float = 1) -> None:
    """Add to a count metric (call from the invocation's thread only: not locked)."""
    if value:
        counts = pending.counts
        counts[name] = counts.get(name, 0) + value


def latency(name: str, ms: float) -> None:
    """Record one latency sample in milliseconds (negative clock skew is clamped to 0)."""
    samples = pending.samples.get(name)
    if samples is None:
        samples = pending.samples[name] = []
    samples.append(float(ms) if ms > 0 else 0.0)


def flush() -> None:
    """Write the invocation's metrics as EMF lines (what Powertools' ``flush_metrics`` prints,
    for the metrics handlers added through Powertools too), then start afresh."""
    documents = pending.documents()
    pending.clear()
    if not is_metrics_disabled():
        for document in documents:
            print(json.dumps(metrics.serialize_metric_set(metrics=document),
                             separators=(",", ":")))
    if metrics.metric_set:
        metrics.flush_metrics()
