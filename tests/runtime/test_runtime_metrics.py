"""EMF metrics: records in, replies out, 410 pruned, and the per-stage latency."""

from __future__ import annotations

import json
from typing import Any

import pytest
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, load
from runtime_kit.roster_table import put_meta

from pipeline.runtime import Envelope, HandlerContext, process_batch


def emf(out: str) -> dict[str, list[float]]:
    """Every metric value printed as EMF, by metric name."""
    values: dict[str, list[float]] = {}
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "WebSocketPipeline"
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                values.setdefault(metric["Name"], []).extend(
                    value if isinstance(value, list) else [value])
    return values


def reply(record: Envelope, ctx: HandlerContext) -> None:
    ctx.reply(record, {"action": "echo"})


def test_a_reply_reports_counts_and_every_stage_latency(
    atconn: AtConnections, ctx: HandlerContext, capsys: pytest.CaptureFixture[str]
) -> None:
    process_batch(load("kinesis_echo"), None, reply, ctx=ctx)
    metrics = emf(capsys.readouterr().out)
    assert metrics["RecordsIn"] == [1.0] and metrics["RepliesOut"] == [1.0]
    assert metrics["GatewayToStreamMs"] == [64.0]  # arrival .187 s - requestTimeEpoch ...123 ms
    assert metrics["StreamToConsumerMs"] == [float(ctx.started_ms - 1700000000187)]
    assert metrics["ConsumerToPostMs"][0] >= 0
    assert metrics["GatewayToPostMs"][0] > metrics["StreamToConsumerMs"][0]


def test_gone_and_pruned_are_counted(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    put_meta(ddb, A)
    atconn.gone.add(A)
    atconn.throttle["t"] = 2

    def reply_and_fanout(record: Envelope, ctx: HandlerContext) -> None:
        reply(record, ctx)
        ctx.fanout(["t"], {"action": "broadcast"})

    process_batch(load("kinesis_echo"), None, reply_and_fanout, ctx=ctx)
    metrics = emf(capsys.readouterr().out)
    assert metrics["PostsGone"] == [1.0] and metrics["ConnectionsPruned"] == [1.0]
    assert metrics["PostRetries"] == [2.0] and metrics["RepliesOut"] == [1.0]
