"""Integration response selection and the ack/nack templates, with no I/O (gateway/responses.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.infrastructure.templates import ACK_TEMPLATE, NACK_TEMPLATE, render
from pipeline.local.gateway.model import IntegrationResponse
from pipeline.local.gateway.responses import render_response, select_response, select_template

CONTEXT = {"routeKey": "send", "requestId": "Req0000000000000=", "connectionId": "C"}
OK = IntegrationResponse("/2\\d\\d/", {"$default": "ok $input.path('$.ShardId')"}, "\\$default")
BAD = IntegrationResponse("/4\\d\\d/", {"$default": "bad"}, "\\$default")
ANY = IntegrationResponse("$default", {"$default": "any"}, "\\$default")


@pytest.mark.parametrize(("status", "expected"), [
    (200, OK), (204, OK), (400, BAD), (403, BAD), (500, ANY), (302, ANY),
])
def test_regex_keys_match_the_whole_status_and_default_catches_the_rest(
        status: int, expected: IntegrationResponse) -> None:
    assert select_response([ANY, OK, BAD], status) is expected


def test_no_match_and_no_default_selects_nothing() -> None:
    assert select_response([OK], 500) is None
    assert render_response([OK], status=500, body=b"{}", context=CONTEXT,
                           stage_variables={}) is None


def test_template_selection_by_status_code_falls_back_to_default() -> None:
    response = IntegrationResponse("/4\\d\\d/", {"404": "missing", "$default": "other"},
                                   "${integration.response.statuscode}")
    assert select_template(response, 404) == "missing"
    assert select_template(response, 400) == "other"


def test_no_template_passes_the_integration_body_through() -> None:
    raw = IntegrationResponse("$default", {}, None)
    assert render_response([raw], status=200, body=b'{"ShardId":"s"}', context=CONTEXT,
                           stage_variables={}) == '{"ShardId":"s"}'


def _responses() -> list[IntegrationResponse]:
    return [
        IntegrationResponse("/2\\d\\d/", {"$default": render(ACK_TEMPLATE, {})}, "\\$default"),
        IntegrationResponse("/4\\d\\d/", {"$default": render(
            NACK_TEMPLATE, {"RETRYABLE_BY_STATUS": "false"})}, "\\$default"),
        IntegrationResponse("/5\\d\\d/", {"$default": render(
            NACK_TEMPLATE, {"RETRYABLE_BY_STATUS": "true"})}, "\\$default"),
    ]


def _frame(status: int, body: dict[str, Any]) -> Any:
    text = render_response(_responses(), status=status, body=json.dumps(body).encode(),
                           context=CONTEXT, stage_variables={})
    assert text is not None
    return json.loads(text)


def test_ack_frame_carries_shard_and_sequence_number() -> None:
    assert _frame(200, {"ShardId": "shardId-000000000001", "SequenceNumber": "4959",
                        "EncryptionType": "KMS"}) == {
        "action": "ack", "route": "send", "requestId": "Req0000000000000=",
        "shardId": "shardId-000000000001", "sequenceNumber": "4959"}


@pytest.mark.parametrize(("status", "error_type", "code", "retryable"), [
    (400, "ProvisionedThroughputExceededException", "ProvisionedThroughputExceededException", True),
    (400, "KMSThrottlingException", "KMSThrottlingException", True),
    (400, "com.amazonaws.kinesis.v20131202#AccessDeniedException", "AccessDeniedException", False),
    (400, "ValidationException", "ValidationException", False),
    (400, "ResourceNotFoundException:http://internal.amazon.com/", "ResourceNotFoundException",
     False),
    (500, "InternalFailure", "InternalFailure", True),
    (503, "", "UnknownError", True),
])
def test_nack_frame_has_the_aws_code_and_whether_to_retry(
        status: int, error_type: str, code: str, retryable: bool) -> None:
    frame = _frame(status, {"__type": error_type, "message": "m"})
    assert frame == {"action": "nack", "route": "send", "requestId": "Req0000000000000=",
                     "error": code, "retryable": retryable}


def test_hostile_error_type_cannot_break_the_frame() -> None:
    frame = _frame(400, {"__type": 'x"}, "retryable": true, "a": "'})
    assert frame["action"] == "nack" and frame["retryable"] is False
