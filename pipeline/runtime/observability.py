"""Structured JSON logs and CloudWatch metrics (EMF), one logger and one metric set per container.

The logs are Powertools Logger's lines (:mod:`.logs`); the metrics are CloudWatch's embedded
metric format, written as Powertools' ``Metrics`` writes it (namespace, a ``service`` dimension,
``Timestamp`` in epoch ms; a test compares the two). Neither imports Powertools: its package
costs ~85 ms of a container's cold start here before any of its utilities.
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

The runtime's per-record metrics (counts and stage latencies, several per record) are kept in
:data:`pending` and written once per invocation by :func:`flush` (a validated call per value
was ~8 µs each, six per echo record). A count is one value per invocation (its sum: the
dashboards read Sum), a latency keeps every sample (percentiles need them), a gauge every
value set, at most 100 values per metric in one EMF document, as EMF allows. Nothing is
written when ``POWERTOOLS_METRICS_DISABLED`` is true, or ``POWERTOOLS_DEV`` is true and
``POWERTOOLS_METRICS_DISABLED`` unset (Powertools' rule).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

from pipeline.names import METRICS_NAMESPACE

from .logs import StructuredLogger

__all__ = ["COUNT", "MILLISECONDS", "count", "flush", "gauge", "latency", "logger", "pending"]

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "consumer")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
logger = StructuredLogger(SERVICE)

COUNT = "Count"
MILLISECONDS = "Milliseconds"

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

    __slots__ = ("counts", "gauges", "samples")

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.samples: dict[str, list[float]] = {}
        self.gauges: dict[str, list[float]] = {}

    def documents(self) -> list[dict[str, dict[str, object]]]:
        """Metric sets (name -> ``Unit`` and ``Value``, Powertools' shape), each metric with at
        most 100 values per set."""
        sets: list[dict[str, dict[str, object]]] = [{}]
        for name, total in self.counts.items():
            sets[0][name] = {"Unit": COUNT, "Value": [total]}
        for unit, series in ((MILLISECONDS, self.samples), (COUNT, self.gauges)):
            for name, values in series.items():
                for i in range(0, len(values), EMF_MAX_VALUES):
                    n = i // EMF_MAX_VALUES
                    if n == len(sets):
                        sets.append({})
                    sets[n][name] = {"Unit": unit, "Value": values[i:i + EMF_MAX_VALUES]}
        return [s for s in sets if s]

    def clear(self) -> None:
        self.counts.clear()
        self.samples.clear()
        self.gauges.clear()


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


def gauge(name: str, value: float) -> None:
    """Record a value of a gauge (a count at a moment, e.g. open connections), kept as set."""
    gauges = pending.gauges.get(name)
    if gauges is None:
        gauges = pending.gauges[name] = []
    gauges.append(float(value))


def emf(metric_set: dict[str, dict[str, object]], *, timestamp_ms: int | None = None,
        namespace: str | None = None, service: str | None = None) -> dict[str, object]:
    """One EMF document of ``metric_set`` (Powertools' ``serialize_metric_set``: the
    ``service`` dimension, standard resolution)."""
    service = SERVICE if service is None else service
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE if namespace is None else namespace,
                "Dimensions": [["service"]],
                "Metrics": [{"Name": name, "Unit": metric["Unit"]}
                            for name, metric in metric_set.items()],
            }],
        },
        "service": service,
        **{name: metric["Value"] for name, metric in metric_set.items()},
    }


def metrics_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Powertools' rule: disabled when ``POWERTOOLS_METRICS_DISABLED`` is true, or when
    ``POWERTOOLS_DEV`` is true and ``POWERTOOLS_METRICS_DISABLED`` is not set."""
    disabled = environ.get("POWERTOOLS_METRICS_DISABLED")
    if disabled is not None:
        return _true(disabled)
    return _true(environ.get("POWERTOOLS_DEV", "false"))


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "y", "yes", "t", "true", "on")


def flush() -> None:
    """Write the invocation's metrics as EMF lines on stdout, then start afresh."""
    documents = pending.documents()
    pending.clear()
    if documents and not metrics_disabled():
        for document in documents:
            print(json.dumps(emf(document), separators=(",", ":")))
