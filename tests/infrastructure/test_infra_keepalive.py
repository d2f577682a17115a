"""The MOCK routes in the template (no stream record): the ping keepalive and whoami, each a
MOCK integration with its response template and a route response."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from pipeline.infrastructure.templates import render


def _mock_route(stack_template: dict[str, Any], route_key: str) -> tuple[str, str]:
    """(route id, MOCK integration id) of *route_key*, asserting the integration's shape."""
    template = Template.from_json(stack_template)
    resources = stack_template["Resources"]
    (route_id,) = [k for k, v in resources.items() if v["Type"] == "AWS::ApiGatewayV2::Route"
                   and v["Properties"]["RouteKey"] == route_key]
    route = resources[route_id]["Properties"]
    (mock_id,) = [k for k, v in resources.items()
                  if v["Type"] == "AWS::ApiGatewayV2::Integration" and k in str(route["Target"])]
    mock = resources[mock_id]["Properties"]
    assert mock["IntegrationType"] == "MOCK"
    assert mock["RequestTemplates"] == {"$default": render("ping_mock_request.vtl", {})}
    assert "CredentialsArn" not in mock  # no AWS call, no role
    assert route["RouteResponseSelectionExpression"] == "$default"
    template.has_resource_properties("AWS::ApiGatewayV2::RouteResponse", {
        "RouteId": {"Ref": route_id}, "RouteResponseKey": "$default"})
    return route_id, mock_id


def test_ping_is_a_two_way_route_on_a_mock_integration(stack_template: dict[str, Any]) -> None:
    _, mock_id = _mock_route(stack_template, "ping")
    Template.from_json(stack_template).has_resource_properties(
        "AWS::ApiGatewayV2::IntegrationResponse", {
            "IntegrationId": {"Ref": mock_id}, "IntegrationResponseKey": "$default",
            "ResponseTemplates": {"$default": Match.string_like_regexp(r'\{"action":"pong"\}$')}})


def test_whoami_answers_the_connection_id_from_a_mock_integration(
        stack_template: dict[str, Any]) -> None:
    _, mock_id = _mock_route(stack_template, "whoami")
    Template.from_json(stack_template).has_resource_properties(
        "AWS::ApiGatewayV2::IntegrationResponse", {
            "IntegrationId": {"Ref": mock_id}, "IntegrationResponseKey": "$default",
            "ResponseTemplates": {"$default": render("whoami_response.vtl", {})}})
