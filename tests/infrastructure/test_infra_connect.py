"""``$connect`` as AWS's own sample for a DynamoDB PutItem ``$connect`` declares it.

aws-samples/serverless-patterns ``apigw-websocket-api-connection-dynamodb/template.yaml``: the
route has a ``$default`` RouteResponse and its AWS integration a ``/200/`` IntegrationResponse
(template selection ``\\$default``, no template), and the route no RouteResponseSelectionExpression.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.local.cfn import resolve_stack
from pipeline.local.gateway import build_api_model

pytestmark = pytest.mark.synth


def _of_type(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template["Resources"]
    return {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == rtype}


def _connect(template: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    route_id, route = next((lid, p) for lid, p in
                           _of_type(template, "AWS::ApiGatewayV2::Route").items()
                           if p["RouteKey"] == "$connect")
    integration_id = str(route["Target"]["Fn::Join"][1][-1]["Ref"])
    return route_id, route, integration_id


def test_connect_has_the_samples_route_response(stack_template: dict[str, Any]) -> None:
    route_id, route, _ = _connect(stack_template)
    responses = [p for p in _of_type(stack_template, "AWS::ApiGatewayV2::RouteResponse").values()
                 if p["RouteId"] == {"Ref": route_id}]
    assert [p["RouteResponseKey"] for p in responses] == ["$default"]
    assert "RouteResponseSelectionExpression" not in route  # as in the sample


def test_connect_has_the_samples_integration_response(stack_template: dict[str, Any]) -> None:
    _, _, integration_id = _connect(stack_template)
    responses = [p for p in _of_type(stack_template, "AWS::ApiGatewayV2::IntegrationResponse")
                 .values() if p["IntegrationId"] == {"Ref": integration_id}]
    assert len(responses) == 1
    (response,) = responses
    assert response["IntegrationResponseKey"] == "/200/"
    assert response["TemplateSelectionExpression"] == "\\$default"
    assert "ResponseTemplates" not in response
    integration = _of_type(stack_template, "AWS::ApiGatewayV2::Integration")[integration_id]
    assert integration["IntegrationType"] == "AWS"
    assert "dynamodb:action/PutItem" in json.dumps(integration["IntegrationUri"])


def test_the_twin_reads_connect_as_one_way_with_its_response(
        stack_template: dict[str, Any], cloud_assembly: Any) -> None:
    stack = resolve_stack(stack_template, "ConnectModel-dev", cloud_assembly)
    connect = build_api_model(stack, "dev").routes["$connect"]
    assert connect.integration is not None and not connect.two_way
    assert [r.key for r in connect.integration.responses] == ["/200/"]


def test_a_failed_put_item_matches_no_connect_response_and_the_twin_refuses(
        stack_template: dict[str, Any], cloud_assembly: Any) -> None:
    """Issue 21, finding 5: the decision (refuse) made explicit. $connect answers only ``/200/``
    (no ``$default``), so a failed PutItem (4xx, 5xx) matches no integration response: an
    integration failure, and the route-keys page says the connection is then not made. The
    twin's default agrees (``--connect-failure refuse``)."""
    from pipeline.infrastructure.websocket_ingress import CONNECT_RESPONSE_KEYS
    from pipeline.local.gateway import GatewayRules
    from pipeline.local.gateway.responses import select_response
    from pipeline.local.twin import TwinConfig

    assert CONNECT_RESPONSE_KEYS == ("/200/",)
    stack = resolve_stack(stack_template, "ConnectModel-dev", cloud_assembly)
    connect = build_api_model(stack, "dev").routes["$connect"]
    assert connect.integration is not None
    responses = connect.integration.responses
    assert select_response(responses, 200) is not None
    for status in (400, 403, 500, 503):
        assert select_response(responses, status) is None, status
    assert GatewayRules().connect_failure == "refuse"
    assert TwinConfig().connect_failure == "refuse"
