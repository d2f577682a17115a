"""EMF metrics: records in, replies out, 410 pruned, and the per-stage latency."""

from __future__ import annotations

import json
from typing import Any

import pytest
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, envelope, event, load
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


def emf_documents(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_a_batch_sums_its_counts_and_keeps_every_latency_sample(
    atconn: AtConnections, ctx: HandlerContext, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [(f"L0SM{i:010d}Iw=", envelope("echo", f"L0SM{i:010d}Iw=", {"action": "echo"}))
             for i in range(150)]
    process_batch(event(*items), None, reply, ctx=ctx)
    out = capsys.readouterr().out
    metrics = emf(out)
    assert metrics["RecordsIn"] == [150.0] and metrics["RepliesOut"] == [150.0]
    for name in ("GatewayToStreamMs", "StreamToConsumerMs", "ConsumerToPostMs",
                 "GatewayToPostMs"):
        assert len(metrics[name]) == 150
    documents = emf_documents(out)
    assert len(documents) == 2  # EMF: at most 100 values of a metric in one document
    for doc in documents:
        assert doc["service"] and doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
            ["service"]]
        units = {m["Name"]: m["Unit"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
        assert all(len(doc[name]) <= 100 for name in units)
        assert units.get("GatewayToPostMs") == "Milliseconds"
    assert {m["Name"]: m["Unit"] for m in documents[0]["_aws"]["CloudWatchMetrics"][0][
        "Metrics"]}["RecordsIn"] == "Count"


def test_nothing_pending_after_an_invocation(
    atconn: AtConnections, ctx: HandlerContext, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.runtime.observability import pending

    process_batch(load("kinesis_echo"), None, reply, ctx=ctx)
    assert not pending.counts and not pending.samples and not pending.gauges
    process_batch(load("kinesis_echo"), None, reply, ctx=ctx)
    assert emf(capsys.readouterr().out)["RecordsIn"] == [1.0, 1.0]  # one document each
