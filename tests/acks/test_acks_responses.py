"""Integration response selection and the ack/nack templates, with no I/O (gateway/responses.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.infrastructure.templates import ACK_TEMPLATE, NACK_TEMPLATE, render
from pipeline.infrastructure.websocket_ingress import ACK_RESPONSES
from pipeline.local.gateway import SELECTION_RULES
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
    """The acked integration's responses exactly as the stack declares them (ACK_RESPONSES)."""
    out = []
    for key, (template, retryable) in ACK_RESPONSES.items():
        values = {"RETRYABLE_BY_STATUS": retryable} if retryable else {}
        out.append(IntegrationResponse(key, {"$default": render(template, values)}, "\\$default"))
    return out


def _frame(status: int, body: dict[str, Any], rule: str = "status") -> Any:
    text = render_response(_responses(), status=status, body=json.dumps(body).encode(),
                           context=CONTEXT, stage_variables={}, rule=rule)
    assert text is not None
    return json.loads(text)


@pytest.mark.parametrize("rule", SELECTION_RULES)
def test_ack_frame_carries_shard_and_sequence_number(rule: str) -> None:
    assert _frame(200, {"ShardId": "shardId-000000000001", "SequenceNumber": "4959",
                        "EncryptionType": "KMS"}, rule) == {
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
@pytest.mark.parametrize("rule", SELECTION_RULES)
def test_nack_frame_has_the_aws_code_and_whether_to_retry(
        status: int, error_type: str, code: str, retryable: bool, rule: str) -> None:
    frame = _frame(status, {"__type": error_type, "message": "m"}, rule)
    assert frame == {"action": "nack", "route": "send", "requestId": "Req0000000000000=",
                     "error": code, "retryable": retryable}


def test_hostile_error_type_cannot_break_the_frame() -> None:
    frame = _frame(400, {"__type": 'x"}, "retryable": true, "a": "'})
    assert frame["action"] == "nack" and frame["retryable"] is False


def test_lambda_like_selection_sends_every_kinesis_answer_to_default() -> None:
    """Under Lambda's rule the keys see the body's errorMessage, which Kinesis never sends."""
    keys = {r.key: r for r in _responses()}
    for status in (200, 400, 500):
        chosen = select_response(_responses(), status, rule="lambda-like",
                                 body=b'{"ShardId":"s","SequenceNumber":"1"}')
        assert chosen == keys["$default"]
    lambda_error = select_response([IntegrationResponse("/.*boom.*/", {}), keys["$default"]],
                                   200, rule="lambda-like", body=b'{"errorMessage":"a boom"}')
    assert lambda_error is not None and lambda_error.key == "/.*boom.*/"


@pytest.mark.parametrize("key", ["/4\\d\\d/", "/5\\d\\d/", "$default"])
def test_a_stored_record_is_acked_whichever_key_selected_the_template(key: str) -> None:
    """The body decides: a SequenceNumber means stored, so no template may nack it."""
    template, retryable = ACK_RESPONSES[key]
    response = IntegrationResponse("$default", {"$default": render(
        template, {"RETRYABLE_BY_STATUS": retryable})}, "\\$default")
    body = b'{"ShardId":"shardId-000000000003","SequenceNumber":"49000000000000000000000000000000000000000000000000000007"}'
    text = render_response([response], status=200, body=body, context=CONTEXT,
                           stage_variables={})
    assert text is not None and json.loads(text) == {
        "action": "ack", "route": "send", "requestId": "Req0000000000000=",
        "shardId": "shardId-000000000003",
        "sequenceNumber": "49000000000000000000000000000000000000000000000000000007"}
    ack = render_response([IntegrationResponse("$default", {"$default": render(
        ACK_TEMPLATE, {})}, "\\$default")], status=200, body=body, context=CONTEXT,
        stage_variables={})
    assert text == ack  # byte-identical to the /2xx/ ack


def test_nack_template_on_its_own_still_nacks_errors() -> None:
    nack = IntegrationResponse("$default", {"$default": render(
        NACK_TEMPLATE, {"RETRYABLE_BY_STATUS": "true"})}, "\\$default")
    text = render_response([nack], status=400, body=b'{"__type":"ValidationException"}',
                           context=CONTEXT, stage_variables={})
    assert text is not None and json.loads(text)["action"] == "nack"
