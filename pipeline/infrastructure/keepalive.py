"""Routes API Gateway answers itself: ``ping`` (:class:`KeepaliveRoute`) and ``whoami``
(:class:`WhoamiRoute`, ``{"action":"whoami","connectionId":...}`` from ``$context``).

KeepaliveRoute: ``{"action":"ping"}`` answered ``{"action":"pong"}`` by API Gateway itself.

A two-way route on a MOCK integration (request template ``ping_mock_request.vtl`` picks status
200; the ``$default`` integration response ``ping_pong_response.vtl`` renders the pong) with a
``$default`` route response. Clients send it before the 10-minute idle timeout; it writes no
stream record and invokes no Lambda.
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-integration-requests.html
"""

from __future__ import annotations

from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from constructs import Construct

from pipeline.infrastructure.templates import render
from pipeline.names import PING_ROUTE, WHOAMI_ROUTE

PING_REQUEST_TEMPLATE = "ping_mock_request.vtl"
PONG_RESPONSE_TEMPLATE = "ping_pong_response.vtl"
_INTEGRATION_ID = "PingMock"
WHOAMI_RESPONSE_TEMPLATE = "whoami_response.vtl"


class KeepaliveRoute(Construct):
    """The ``ping`` route of *api*: MOCK integration, integration response, route response."""

    def __init__(self, scope: Construct, id: str, *, api: apigwv2.WebSocketApi) -> None:
        super().__init__(scope, id)
        self.route, self.response = _mock_route(self, api, PING_ROUTE, _INTEGRATION_ID, "Pong",
                                                PONG_RESPONSE_TEMPLATE)


class WhoamiRoute(Construct):
    """The ``whoami`` route of *api*: the sender's connection id, answered by API Gateway."""

    def __init__(self, scope: Construct, id: str, *, api: apigwv2.WebSocketApi) -> None:
        super().__init__(scope, id)
        self.route, self.response = _mock_route(self, api, WHOAMI_ROUTE, "WhoamiMock", "Whoami",
                                                WHOAMI_RESPONSE_TEMPLATE)


def _mock_route(scope: Construct, api: apigwv2.WebSocketApi, route_key: str,
                integration_id: str, response_id: str, response_template: str
                ) -> tuple[apigwv2.WebSocketRoute, apigwv2.CfnIntegrationResponse]:
    """A two-way route on a MOCK integration whose ``$default`` response renders *template*."""
    mock = integrations.WebSocketMockIntegration(
        integration_id,
        request_templates={"$default": render(PING_REQUEST_TEMPLATE, {})},
        template_selection_expression="\\$default",
    )
    # return_response=True: RouteResponseSelectionExpression + a $default route response.
    route = api.add_route(route_key, integration=mock, return_response=True)
    bound = route.node.find_child(integration_id)  # CDK binds it under its route
    assert isinstance(bound, apigwv2.WebSocketIntegration)
    response = apigwv2.CfnIntegrationResponse(
        scope,
        response_id,
        api_id=api.api_id,
        integration_id=bound.integration_id,
        integration_response_key="$default",
        response_templates={"$default": render(response_template, {})},
        template_selection_expression="\\$default",
    )
    return route, response
