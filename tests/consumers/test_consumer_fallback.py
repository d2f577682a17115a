"""fallback ($default): unknown_action for JSON objects, invalid_frame for the rest."""

from __future__ import annotations

from typing import Any

import pytest
from consumer_loader import load_handler
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, envelope, event

from pipeline.runtime import HandlerContext, process_batch

fallback = load_handler("fallback")


def run(frame: str, ctx: HandlerContext) -> dict[str, Any]:
    response = process_batch(event((A, envelope("$default", A, frame))), None,
                             fallback.record_handler, ctx=ctx)
    assert response == {"batchItemFailures": []}
    return dict(response)


@pytest.mark.parametrize("frame", ["not json {", "[1,2]", '"text"', "42", "", "null"])
def test_non_objects_get_invalid_frame(
    frame: str, atconn: AtConnections, ctx: HandlerContext
) -> None:
    run(frame, ctx)
    (reply,) = atconn.received(A)
    assert reply["action"] == "error" and reply["error"] == "invalid_frame"
    assert isinstance(reply["message"], str) and reply["message"]


@pytest.mark.parametrize(("frame", "received"), [
    ('{"action":"dance","x":1}', "dance"),
    ("{}", None),
    ('{"action":5}', None),
])
def test_json_objects_get_unknown_action_with_the_action_received(
    frame: str, received: str | None, atconn: AtConnections, ctx: HandlerContext
) -> None:
    run(frame, ctx)
    (reply,) = atconn.received(A)
    assert reply["action"] == "error" and reply["error"] == "unknown_action"
    assert reply["received"] == received
    assert ("dance" in reply["message"]) is (received == "dance")
