"""No-I/O pieces: which frames are deduplicated, and the model's integration response checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stacks import stack_of

from pipeline.local.gateway import ApiModelError, build_api_model
from pipeline.runtime.envelope import ConnectionId, Envelope
from pipeline.runtime.idempotency import frame_id


def _envelope(body: Any, event_type: str = "MESSAGE") -> Envelope:
    text = body if isinstance(body, str) else json.dumps(body)
    return Envelope(route_key="echo", event_type=event_type,  # type: ignore[arg-type]
                    connection_id=ConnectionId("C0000000000000A="), request_id="r",
                    request_time_epoch=0, body=text, principal="", sequence_number="1",
                    sub_sequence_number=None, partition_key="C0000000000000A=",
                    approximate_arrival_timestamp=0.0)


@pytest.mark.parametrize(("body", "expected"), [
    ({"action": "echo", "id": "a-1"}, "a-1"),
    ({"action": "echo", "id": 7}, "7"),
    ({"action": "echo"}, None),
    ({"action": "echo", "id": ""}, None),
    ({"action": "echo", "id": "x" * 129}, None),
    ({"action": "echo", "id": True}, None),
    ({"action": "echo", "id": {"nested": 1}}, None),
    ("not json", None),
])
def test_only_usable_ids_are_deduplicated(body: Any, expected: str | None) -> None:
    assert frame_id(_envelope(body)) == expected


def test_disconnects_are_never_deduplicated() -> None:
    assert frame_id(_envelope({"id": "a"}, event_type="DISCONNECT")) is None


def _api(response_key: str) -> dict[str, Any]:
    return {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Ref": "api1",
                "Properties": {"ProtocolType": "WEBSOCKET"}},
        "Int": {"Type": "AWS::ApiGatewayV2::Integration", "Ref": "int1", "Properties": {
            "ApiId": "api1", "IntegrationType": "AWS",
            "IntegrationUri": "arn:aws:apigateway:us-east-1:kinesis:action/PutRecord"}},
        "Route": {"Type": "AWS::ApiGatewayV2::Route", "Ref": "route1", "Properties": {
            "ApiId": "api1", "RouteKey": "send", "Target": "integrations/int1",
            "RouteResponseSelectionExpression": "$default"}},
        "RouteResponse": {"Type": "AWS::ApiGatewayV2::RouteResponse", "Properties": {
            "ApiId": "api1", "RouteId": "route1", "RouteResponseKey": "$default"}},
        "IntResponse": {"Type": "AWS::ApiGatewayV2::IntegrationResponse", "Properties": {
            "ApiId": "api1", "IntegrationId": "int1", "IntegrationResponseKey": response_key,
            "ResponseTemplates": {"$default": "ok"}}},
    }


def test_model_links_integration_responses_and_route_responses() -> None:
    model = build_api_model(stack_of(_api("/2\\d\\d/")), "dev")
    route = model.routes["send"]
    assert route.two_way and route.integration is not None
    assert [r.key for r in route.integration.responses] == ["/2\\d\\d/"]


def test_a_route_without_its_route_response_is_one_way() -> None:
    resources = _api("$default")
    del resources["RouteResponse"]
    assert not build_api_model(stack_of(resources), "dev").routes["send"].two_way


def test_an_integration_response_key_must_be_default_or_a_regex() -> None:
    with pytest.raises(ApiModelError, match="neither"):
        build_api_model(stack_of(_api("200")), "dev")
