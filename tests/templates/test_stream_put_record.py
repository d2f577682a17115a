"""The stream template keeps the envelope valid JSON, with the gateway's ids, for any frame."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.local import vtl

TEMPLATES = Path(__file__).resolve().parents[2] / "integration_templates"
STREAM = (TEMPLATES / "stream_put_record.vtl").read_text().replace("@@STREAM_NAME@@", "ws-stream")

CONTEXT: dict[str, Any] = {
    "routeKey": "$default",
    "eventType": "MESSAGE",
    "connectionId": "L0SM9cOFvHcCIhw=",
    "requestId": "Kd3fXFuRoAMFT1Q=",
    "messageId": "Kd3fYcIboAMCJbg=",
    "requestTimeEpoch": 1700000000123,
    "connectedAt": 1700000000000,
    "stage": "dev",
    "domainName": "127.0.0.1",
    "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest"},
}

HOSTILE_FRAMES = [
    "",
    "not json at all",
    '{"action":"echo","data":1}',
    'quote " in the middle',
    "single ' quote",
    "it's a 'quoted' \"mix\"",
    "back\\slash",
    "\\",
    "\\'",
    "\\\\'\"",
    "".join(chr(c) for c in range(0x20)),
    "\x7f DEL",
    "line\u2028separator\u2029paragraph",
    "emoji 😀 astral 𝄞 and CJK 漢字 and é",
    '"invalid escapes \\x \\u12 \\q"',
    '{"connectionId":"forged","routeKey":"$connect","eventType":"DISCONNECT"}',
    '"}',
    '"},"connectionId":"forged","x":{"',
    "}}}]]]",
    "</script><script>alert(1)</script>",
    "${context.connectionId} $util.base64Encode('x') #set($q = 'x')",
    "x" * 130_000,
    "\ud800 lone surrogate",
    "\x00",
]


def _envelope(request: str) -> dict[str, Any]:
    put = json.loads(request)
    assert set(put) == {"StreamName", "PartitionKey", "Data"}
    assert put["StreamName"] == "ws-stream"
    assert put["PartitionKey"] == CONTEXT["connectionId"]
    envelope: dict[str, Any] = json.loads(base64.b64decode(put["Data"], validate=True))
    return envelope


@pytest.mark.parametrize("frame", HOSTILE_FRAMES, ids=range(len(HOSTILE_FRAMES)))
def test_any_frame_gives_a_valid_envelope_with_the_gateways_ids(frame: str) -> None:
    envelope = _envelope(vtl.render(STREAM, body=frame, context=CONTEXT))
    assert envelope["body"] == frame
    assert envelope["connectionId"] == CONTEXT["connectionId"]
    assert envelope["routeKey"] == "$default"
    assert envelope["eventType"] == "MESSAGE"
    assert envelope["v"] == 1


def test_message_envelope_has_the_contract_fields() -> None:
    envelope = _envelope(vtl.render(STREAM, body="{}", context={**CONTEXT, "routeKey": "echo"}))
    assert envelope == {
        "v": 1,
        "routeKey": "echo",
        "eventType": "MESSAGE",
        "connectionId": "L0SM9cOFvHcCIhw=",
        "requestId": "Kd3fXFuRoAMFT1Q=",
        "messageId": "Kd3fYcIboAMCJbg=",
        "requestTimeEpoch": 1700000000123,
        "stage": "dev",
        "domainName": "127.0.0.1",
        "sourceIp": "127.0.0.1",
        "principal": "",
        "body": "{}",
    }


def test_disconnect_envelope_has_status_code_and_empty_body_and_message_id() -> None:
    context = {**CONTEXT, "routeKey": "$disconnect", "eventType": "DISCONNECT",
               "disconnectStatusCode": 1001}
    del context["messageId"]
    envelope = _envelope(vtl.render(STREAM, body="", context=context))
    assert envelope["disconnectStatusCode"] == 1001
    assert envelope["messageId"] == ""
    assert envelope["body"] == ""
    assert envelope["eventType"] == "DISCONNECT"


def test_principal_is_escaped_and_present_with_an_authorizer() -> None:
    context = {**CONTEXT, "authorizer": {"principalId": 'user"\'1'}}
    assert _envelope(vtl.render(STREAM, body="x", context=context))["principal"] == 'user"\'1'
