"""The consumers-ACTIVE waiter's handlers (issue 21 finding 3), with a stub Kinesis client."""

from __future__ import annotations

from typing import Any

from pipeline.infrastructure.consumer_activation import HANDLER_SOURCE, INLINE_CODE_LIMIT
from pipeline.infrastructure.consumer_waiter.handler import is_complete, on_event

ARNS = ["arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/a:1",
        "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/b:1"]


class StubKinesis:
    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        self.calls: list[str] = []

    def describe_stream_consumer(self, ConsumerARN: str) -> dict[str, Any]:
        self.calls.append(ConsumerARN)
        return {"ConsumerDescription": {"ConsumerARN": ConsumerARN,
                                        "ConsumerStatus": self.statuses[ConsumerARN]}}


def _event(kind: str) -> dict[str, Any]:
    return {"RequestType": kind, "LogicalResourceId": "Group1Active",
            "ResourceProperties": {"ConsumerArns": ARNS}}


def test_incomplete_while_any_consumer_is_creating() -> None:
    client = StubKinesis({ARNS[0]: "ACTIVE", ARNS[1]: "CREATING"})
    assert is_complete(_event("Create"), client=client) == {"IsComplete": False}
    client.statuses[ARNS[1]] = "ACTIVE"
    assert is_complete(_event("Update"), client=client) == {"IsComplete": True}


def test_stops_at_the_first_consumer_not_active() -> None:
    client = StubKinesis({ARNS[0]: "CREATING", ARNS[1]: "ACTIVE"})
    assert is_complete(_event("Create"), client=client) == {"IsComplete": False}
    assert client.calls == [ARNS[0]]


def test_delete_completes_without_a_call() -> None:
    client = StubKinesis({})
    assert is_complete(_event("Delete"), client=client) == {"IsComplete": True}
    assert client.calls == []


def test_on_event_keeps_one_physical_id() -> None:
    created = on_event(_event("Create"))
    assert created == {"PhysicalResourceId": "Group1Active-consumers-active"}
    assert on_event({**_event("Update"), **created}) == created


def test_the_source_fits_cloudformation_inline_code() -> None:
    assert len(HANDLER_SOURCE.read_bytes()) < INLINE_CODE_LIMIT
