"""The sans-I/O core: route selection, ids, $context, error frames, $disconnect once."""

from __future__ import annotations

import base64
import json
import string
from collections import Counter

import pytest
from gateway_kit import resources
from stacks import stack_of

from pipeline.local.gateway import build_api_model
from pipeline.local.gateway.protocol import (
    GatewayProtocol,
    IntegrationCall,
    Reply,
    integration_failed,
    is_well_formed_id,
    new_id,
    request_time,
)


@pytest.fixture
def protocol() -> GatewayProtocol:
    return GatewayProtocol(build_api_model(stack_of(resources()), "dev"), clock_ms=lambda: 1700000000123)


@pytest.mark.parametrize(("frame", "route"), [
    ('{"action":"echo","data":1}', "echo"),
    ('  {"action": "chat"}', "chat"),
    ('{"action":"unknown"}', "$default"),
    ('{"action":"$disconnect"}', "$default"),
    ('{"action":"$connect"}', "$default"),
    ('{"action":1}', "$default"),
    ('{"action":["echo"]}', "$default"),
    ('["echo"]', "$default"),
    ("echo", "$default"),
    ('{"action":"echo"', "$default"),
    ("", "$default"),
])
def test_route_selection(protocol: GatewayProtocol, frame: str, route: str) -> None:
    assert protocol.select_route(frame) == route


def test_ids_look_like_aws() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(is_well_formed_id(i) and len(base64.b64decode(i)) == 11 for i in ids)
    assert not is_well_formed_id("short=")
    assert not is_well_formed_id("AAAAAAAAAAAAAAAA")


def test_ids_use_every_letter_of_the_alphabet_and_nothing_else() -> None:
    letters = Counter("".join(new_id()[:-1] for _ in range(20_000)))  # ~4840 each, sd ~70
    assert set(letters) == set(string.ascii_letters + string.digits)
    # Unbiased: max/min ~1.09 (3 sd each way). A plain byte % 62 favours 8 letters by 5:4 (1.25).
    assert max(letters.values()) < 1.15 * min(letters.values())


def test_message_renders_the_stream_request(protocol: GatewayProtocol) -> None:
    conn = protocol.open(source_ip="10.0.0.9", user_agent="ua", domain_name="127.0.0.1:8080")
    call = protocol.message(conn, '{"action":"echo"}')
    assert isinstance(call, IntegrationCall)
    assert (call.service, call.action, call.route_key) == ("kinesis", "PutRecord", "echo")
    envelope = json.loads(base64.b64decode(json.loads(call.body)["Data"]))
    assert envelope["requestId"] == call.request_id
    assert envelope["requestTimeEpoch"] == 1700000000123
    assert envelope["sourceIp"] == "10.0.0.9"
    assert envelope["domainName"] == "127.0.0.1:8080"
    assert envelope["messageId"] != envelope["requestId"]


def test_context_has_the_websocket_variables(protocol: GatewayProtocol) -> None:
    conn = protocol.open(source_ip="1.2.3.4", user_agent="ua", domain_name="h")
    ctx = protocol.context(conn, "echo", "MESSAGE", "rid", {"messageId": "mid"})
    assert ctx["requestTime"] == request_time(1700000000123) == "14/Nov/2023:22:13:20 +0000"
    assert ctx["apiId"] == "a1b2c3d4e5"
    assert ctx["identity"] == {"sourceIp": "1.2.3.4", "userAgent": "ua"}
    assert ctx["messageDirection"] == "IN"
    assert "authorizer" not in ctx


def test_no_default_route_gives_a_forbidden_frame() -> None:
    api = build_api_model(stack_of(resources(routes=("$connect", "echo"))), "dev")
    protocol = GatewayProtocol(api)
    conn = protocol.open(source_ip="", user_agent="", domain_name="")
    reply = protocol.message(conn, "hello")
    assert isinstance(reply, Reply)
    frame = json.loads(reply.text)
    assert frame["message"] == "Forbidden"
    assert frame["connectionId"] == conn.connection_id
    assert is_well_formed_id(frame["requestId"])


def test_disconnect_is_rendered_once(protocol: GatewayProtocol) -> None:
    conn = protocol.open(source_ip="", user_agent="", domain_name="")
    first = protocol.disconnect(conn, 1006, "gone")
    assert isinstance(first, IntegrationCall)
    envelope = json.loads(base64.b64decode(json.loads(first.body)["Data"]))
    assert envelope["disconnectStatusCode"] == 1006
    assert protocol.disconnect(conn, 1000) is None


def test_integration_failure_rule() -> None:
    assert not integration_failed(200, None)
    assert integration_failed(400, "ProvisionedThroughputExceededException")
    assert integration_failed(500, None)
    assert integration_failed(200, "AccessDeniedException")
