"""Micro-benchmark of the twin's per-frame path: template renders and sans-I/O frame handling.

Run: ``.venv/bin/python -m loadtest.bench_vtl`` (``--number N`` calls per repeat). Prints the
best-of-5 µs per call of each integration template, rendered by the twin's engine
(``vtl.render``: airspeed-ext's parse, compiled by ``vtl_compile``) from the file on disk with a realistic ``$context`` and
body, and of ``GatewayProtocol.message`` (route selection, ids, ``$context``, request template)
for a one-way route, plus ``message`` + ``answer`` (the ack template) for an acked two-way route.
The baseline, measured in the same run, builds the same echo envelope in plain Python (orjson +
base64): what rendering a template costs beyond producing its bytes at all.
"""

from __future__ import annotations

import argparse
import base64
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from pipeline.local import vtl
from pipeline.local.gateway.model import ApiModel, Integration, IntegrationResponse, Route
from pipeline.local.gateway.protocol import (
    ClientConnection,
    ConnectionId,
    GatewayProtocol,
    IntegrationCall,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "integration_templates"
ROLE_ARN = "arn:aws:iam::123456789012:role/IntegrationRole"
ECHO_FRAME = '{"action":"echo","data":"hello from the benchmark, frame 000042 \\u00e9 \'q\'"}'
CHAT_FRAME = '{"action":"chat","id":"m-42","text":"hi all, see https://example.com/a?b=c"}'
PUT_RECORD_RESULT = ('{"ShardId":"shardId-000000000000","SequenceNumber":'
                     '"49590338271490256608559692538361571095921575989136588898"}')
PUT_RECORD_ERROR = ('{"__type":"com.amazonaws.kinesis#ProvisionedThroughputExceededException",'
                    '"message":"Rate exceeded for shard shardId-000000000000"}')


def _template(name: str) -> str:
    return ((TEMPLATES / name).read_text()
            .replace("@@STREAM_NAME@@", "ws-stream")
            .replace("@@TABLE_NAME@@", "ws-roster")
            .replace("@@CONNECTION_TTL_SECONDS@@", "10800")
            .replace("@@RETRYABLE_BY_STATUS@@", "false"))


def _context(event_type: str, route_key: str) -> dict[str, Any]:
    return {
        "apiId": "a1b2c3d4e5", "connectionId": "L0SM9cOFvHcCIhw=", "connectedAt": 1700000000000,
        "domainName": "127.0.0.1", "eventType": event_type, "extendedRequestId": "Kd3fXFuRoAMFT1Q=",
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "bench"}, "messageDirection": "IN",
        "requestId": "Kd3fXFuRoAMFT1Q=", "messageId": "Kd3fYcIboAMCJbg=",
        "requestTime": "14/Nov/2023:22:13:20 +0000", "requestTimeEpoch": 1700000000123,
        "routeKey": route_key, "stage": "dev", "authorizer": {"principalId": "user-7"},
    }


def _api() -> ApiModel:
    stream = _template("stream_put_record.vtl")
    ack = IntegrationResponse("/2\\d\\d/", {"$default": _template("stream_ack_response.vtl")})
    nack = IntegrationResponse("$default", {"$default": _template("stream_nack_response.vtl")})

    def integration(ident: str, responses: tuple[IntegrationResponse, ...] = ()) -> Integration:
        return Integration(ident, "kinesis", "PutRecord", ROLE_ARN, stream, "NEVER", responses)

    put_item = Integration("intPutItem", "dynamodb", "PutItem", ROLE_ARN,
                           _template("connect_put_item.vtl"), "NEVER")
    routes = {
        "$connect": Route("$connect", put_item),
        "$disconnect": Route("$disconnect", integration("intDisconnect")),
        "$default": Route("$default", integration("intDefault")),
        "echo": Route("echo", integration("intEcho")),
        "chat": Route("chat", integration("intChat", (ack, nack)), two_way=True),
    }
    return ApiModel("a1b2c3d4e5", "dev", "$request.body.action", routes)


def cases() -> list[tuple[str, Callable[[], object]]]:
    """(name, zero-argument callable) for every measured operation."""
    renders = [
        ("stream_put_record.vtl (echo frame)", "stream_put_record.vtl", ECHO_FRAME,
         _context("MESSAGE", "echo")),
        ("stream_put_record.vtl ($disconnect)", "stream_put_record.vtl", "",
         {**_context("DISCONNECT", "$disconnect"), "disconnectStatusCode": 1001}),
        ("connect_put_item.vtl", "connect_put_item.vtl", "", _context("CONNECT", "$connect")),
        ("stream_ack_response.vtl", "stream_ack_response.vtl", PUT_RECORD_RESULT,
         _context("MESSAGE", "chat")),
        ("stream_nack_response.vtl", "stream_nack_response.vtl", PUT_RECORD_ERROR,
         _context("MESSAGE", "chat")),
    ]
    out: list[tuple[str, Callable[[], object]]] = []
    for label, name, body, context in renders:
        text = _template(name)

        def render(text: str = text, body: str = body, context: dict[str, Any] = context) -> str:
            return vtl.render(text, body=body, context=context)

        out.append((f"render {label}", render))

    protocol = GatewayProtocol(_api())
    conn = ClientConnection(ConnectionId("L0SM9cOFvHcCIhw="), 1700000000000, "127.0.0.1", "bench",
                      "127.0.0.1", {"Host": "127.0.0.1"}, {}, {"principalId": "user-7"})

    def one_way() -> object:
        return protocol.message(conn, ECHO_FRAME)

    def two_way() -> object:
        call = protocol.message(conn, CHAT_FRAME)
        assert isinstance(call, IntegrationCall)
        return protocol.answer(call, 200, PUT_RECORD_RESULT.encode())

    out.append(("frame one-way (echo): message()", one_way))
    out.append(("frame acked (chat): message()+answer()", two_way))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=2000, help="calls per repeat")
    args = parser.parse_args(argv)
    number: int = args.number

    def per_call(fn: Callable[[], object]) -> float:
        fn()  # warm the template cache
        return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6

    baseline = per_call(_plain_envelope)
    print(f"{'baseline: echo envelope in plain Python':45s} {baseline:8.1f} µs")
    for name, fn in cases():
        us = per_call(fn)
        print(f"{name:45s} {us:8.1f} µs  ({us / baseline:.1f}x baseline)")


def _plain_envelope() -> bytes:
    """The echo frame's PutRecord request built without a template (the baseline)."""
    c = _context("MESSAGE", "echo")
    envelope = orjson.dumps({
        "v": 1, "routeKey": c["routeKey"], "eventType": c["eventType"],
        "connectionId": c["connectionId"], "requestId": c["requestId"],
        "messageId": c["messageId"], "requestTimeEpoch": c["requestTimeEpoch"],
        "stage": c["stage"], "domainName": c["domainName"],
        "sourceIp": c["identity"]["sourceIp"], "principal": "user-7", "body": ECHO_FRAME})
    return orjson.dumps({"StreamName": "ws-stream", "PartitionKey": c["connectionId"],
                         "Data": base64.b64encode(envelope).decode()})


if __name__ == "__main__":
    main()
