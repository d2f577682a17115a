"""The $connect template writes the roster META item of docs/contracts.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.local import vtl

TEMPLATES = Path(__file__).resolve().parents[2] / "integration_templates"
CONNECT = (
    (TEMPLATES / "connect_put_item.vtl").read_text()
    .replace("@@TABLE_NAME@@", "roster-table")
    .replace("@@CONNECTION_TTL_SECONDS@@", "10800")
)
CONTEXT: dict[str, Any] = {
    "routeKey": "$connect",
    "eventType": "CONNECT",
    "connectionId": "L0SM9cOFvHcCIhw=",
    "requestId": "Kd3fXFuRoAMFT1Q=",
    "requestTimeEpoch": 1700000000456,
    "connectedAt": 1700000000456,
    "stage": "dev",
    "identity": {"sourceIp": "10.1.2.3"},
}


def test_meta_item_matches_the_roster_schema() -> None:
    request = json.loads(vtl.render(CONNECT, body="", context=CONTEXT))
    assert request == {
        "TableName": "roster-table",
        "Item": {
            "pk": {"S": "CONN#L0SM9cOFvHcCIhw="},
            "sk": {"S": "META"},
            "connectionId": {"S": "L0SM9cOFvHcCIhw="},
            "connectedAt": {"N": "1700000000456"},
            "sourceIp": {"S": "10.1.2.3"},
            "principal": {"S": ""},
            "expiresAt": {"N": str(1700000000 + 10800)},
        },
    }


def test_connected_at_as_a_string_still_computes_the_ttl() -> None:
    request = json.loads(
        vtl.render(CONNECT, body="", context={**CONTEXT, "connectedAt": "1700000000456"})
    )
    assert request["Item"]["expiresAt"] == {"N": "1700010800"}


def test_hostile_principal_cannot_break_the_item() -> None:
    principal = 'a"},"pk":{"S":"CONN#other"},"x":{"S":"\\\'\n'
    context = {**CONTEXT, "authorizer": {"principalId": principal}}
    request = json.loads(vtl.render(CONNECT, body="", context=context))
    assert request["Item"]["principal"] == {"S": principal}
    assert request["Item"]["pk"] == {"S": "CONN#L0SM9cOFvHcCIhw="}
