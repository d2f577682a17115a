"""KeepaliveRoute: ``{"action":"ping"}`` answered ``{"action":"pong"}`` by API Gateway itself.

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

PING_ROUTE = "ping"
PING_REQUEST_TEMPLATE = "ping_mock_request.vtl"
PONG_RESPONSE_TEMPLATE = "ping_pong_response.vtl"
_INTEGRATION_ID = "PingMock"


class KeepaliveRoute(Construct):
    """The ``ping`` route of *api*: MOCK integration, integration response, route response."""

    def __init__(self, scope: Construct, id: str, *, api: apigwv2.WebSocketApi) -> None:
        super().__init__(scope, id)
        mock = integrations.WebSocketMockIntegration(
            _INTEGRATION_ID,
            request_templates={"$default": render(PING_REQUEST_TEMPLATE, {})},
            template_selection_expression="\\$default",
        )
        # return_response=True: RouteResponseSelectionExpression + a $default route response.
        self.route = api.add_route(PING_ROUTE, integration=mock, return_response=True)
        bound = self.route.node.find_child(_INTEGRATION_ID)  # CDK binds it under its route
        assert isinstance(bound, apigwv2.WebSocketIntegration)
        self.response = apigwv2.CfnIntegrationResponse(
            self,
            "Pong",
            api_id=api.api_id,
            integration_id=bound.integration_id,
            integration_response_key="$default",
            response_templates={"$default": render(PONG_RESPONSE_TEMPLATE, {})},
            template_selection_expression="\\$default",
        )
