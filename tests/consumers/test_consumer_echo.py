"""echo: the exact reply of docs/contracts.md, through the one-line Lambda handler path."""

from __future__ import annotations

from typing import Any

from consumer_loader import load_handler
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, envelope, event, load

from pipeline.runtime import HandlerContext, process_batch

echo = load_handler("echo")


def test_echo_replies_to_the_sender_with_data_and_timing(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    response = process_batch(load("kinesis_echo"), None, echo.record_handler, ctx=ctx)
    assert response == {"batchItemFailures": []}
    (reply,) = atconn.received(A)
    timing = reply.pop("timing")
    assert reply == {"action": "echo", "data": {"n": 1, "s": "hé"}}
    assert timing["gatewayMs"] == 1700000000123 and timing["streamMs"] == 1700000000187
    assert timing["consumerMs"] == ctx.started_ms <= timing["replyMs"]
    assert set(timing) == {"gatewayMs", "streamMs", "consumerMs", "replyMs"}


def test_echo_without_data_echoes_null(atconn: AtConnections, ctx: HandlerContext) -> None:
    process_batch(event((A, envelope("echo", A, {"action": "echo"}))), None,
                  echo.record_handler, ctx=ctx)
    assert atconn.received(A)[0]["data"] is None


def test_lambda_handler_uses_the_environment(
    atconn: AtConnections, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CONNECTIONS_ENDPOINT_URL", atconn.url)
    assert echo.lambda_handler(load("kinesis_echo"), None) == {"batchItemFailures": []}
    assert atconn.received(A)[0]["action"] == "echo"


def test_a_sender_gone_is_not_a_failure(atconn: AtConnections, ctx: HandlerContext) -> None:
    atconn.gone.add(A)
    assert process_batch(load("kinesis_echo"), None, echo.record_handler, ctx=ctx) == {
        "batchItemFailures": []}
    assert atconn.attempts[A] == 1


def test_an_unreachable_endpoint_fails_the_record(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    atconn.broken.add(A)
    evt = load("kinesis_echo")
    response = process_batch(evt, None, echo.record_handler, ctx=ctx)
    assert response == {"batchItemFailures": [
        {"itemIdentifier": evt["Records"][0]["kinesis"]["sequenceNumber"]}]}
