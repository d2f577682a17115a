"""Load the exact Lambda Kinesis event fixtures of tests/events/ and build variants of them."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
A = "L0SM9cOFvHcCIhw="
B = "L0SNFcOFvHcCF3Q="


def load(name: str) -> dict[str, Any]:
    """A fixture event (a fresh copy each call)."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())  # type: ignore[no-any-return]


def envelope(route: str, cid: str, frame: Any, *, event_type: str = "MESSAGE",
             t: int = 1700000000123) -> bytes:
    """Envelope bytes as the VTL template writes them (``frame`` is the client frame)."""
    body = frame if isinstance(frame, str) else json.dumps(frame)
    return json.dumps({
        "v": 1, "routeKey": route, "eventType": event_type, "connectionId": cid,
        "requestId": f"req-{t}", "messageId": "m", "requestTimeEpoch": t, "stage": "dev",
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "sourceIp": "203.0.113.7",
        "principal": "", "body": body,
    }).encode()


def event(*items: tuple[str, bytes]) -> dict[str, Any]:
    """An event of records ``(partition key, data)`` shaped exactly like kinesis_echo.json's."""
    template = load("kinesis_echo")["Records"][0]
    seq0 = int(template["kinesis"]["sequenceNumber"])
    records = []
    for i, (key, data) in enumerate(items):
        rec = copy.deepcopy(template)
        seq = str(seq0 + 1000 * i)
        rec["kinesis"].update(partitionKey=key, sequenceNumber=seq,
                              data=base64.b64encode(data).decode(),
                              approximateArrivalTimestamp=1700000000.2 + i / 1000)
        rec["eventID"] = f"shardId-000000000000:{seq}"
        records.append(rec)
    return {"Records": records}


def seqs(event: dict[str, Any]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
