"""The ping keepalive in the template: a MOCK integration, its pong response, a route response."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from pipeline.infrastructure.templates import render


def test_ping_is_a_two_way_route_on_a_mock_integration(stack_template: dict[str, Any]) -> None:
    template = Template.from_json(stack_template)
    resources = stack_template["Resources"]
    (mock_id,) = [k for k, v in resources.items()
                  if v["Type"] == "AWS::ApiGatewayV2::Integration"
                  and v["Properties"]["IntegrationType"] == "MOCK"]
    mock = resources[mock_id]["Properties"]
    assert mock["RequestTemplates"] == {"$default": render("ping_mock_request.vtl", {})}
    assert "CredentialsArn" not in mock  # no AWS call, no role
    (route_id,) = [k for k, v in resources.items() if v["Type"] == "AWS::ApiGatewayV2::Route"
                   and v["Properties"]["RouteKey"] == "ping"]
    route = resources[route_id]["Properties"]
    assert route["RouteResponseSelectionExpression"] == "$default"
    assert mock_id in str(route["Target"])
    template.has_resource_properties("AWS::ApiGatewayV2::RouteResponse", {
        "RouteId": {"Ref": route_id}, "RouteResponseKey": "$default"})
    template.has_resource_properties("AWS::ApiGatewayV2::IntegrationResponse", {
        "IntegrationId": {"Ref": mock_id}, "IntegrationResponseKey": "$default",
        "ResponseTemplates": {"$default": Match.string_like_regexp(r'\{"action":"pong"\}$')}})
