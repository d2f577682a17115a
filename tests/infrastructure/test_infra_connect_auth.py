"""ConnectAuthorization built in a bare stack (issue 21, findings 6 and 7): the token's identity
source, the token-mode function ordered after its secret policy, and a Cognito app client without
CDK's default OAuth settings."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk.assertions import Match, Template

from pipeline.infrastructure.config import PipelineConfig
from pipeline.infrastructure.connect_auth import TOKEN_IDENTITY_SOURCE, ConnectAuthorization

pytestmark = pytest.mark.synth


def _stack(config: PipelineConfig) -> Template:
    stack = Stack(App(), "Auth")
    auth = ConnectAuthorization(stack, "ConnectAuthorization", config=config)
    api = apigwv2.WebSocketApi(stack, "Api")
    # An authorizer exists only once a route uses it.
    api.add_route("$connect", integration=_Mock(), authorizer=auth.authorizer)
    return Template.from_stack(stack)


class _Mock(apigwv2.WebSocketRouteIntegration):
    def __init__(self) -> None:
        super().__init__("Mock")

    def bind(self, *, route: apigwv2.IWebSocketRoute,  # type: ignore[override]
             scope: Any) -> apigwv2.WebSocketRouteIntegrationConfig:
        return apigwv2.WebSocketRouteIntegrationConfig(
            type=apigwv2.WebSocketIntegrationType.MOCK, uri="")


@pytest.fixture(scope="module")
def token_template() -> Template:
    return _stack(PipelineConfig(stage="prod", auth="token"))


@pytest.fixture(scope="module")
def cognito_template() -> Template:
    return _stack(PipelineConfig(auth="jwt", cognito=True))


def test_token_auth_names_the_query_token_as_identity_source(token_template: Template) -> None:
    assert TOKEN_IDENTITY_SOURCE == "route.request.querystring.token"
    token_template.has_resource_properties("AWS::ApiGatewayV2::Authorizer", {
        "AuthorizerType": "REQUEST", "IdentitySource": [TOKEN_IDENTITY_SOURCE]})


def test_jwt_auth_names_the_query_token_as_identity_source(cognito_template: Template) -> None:
    cognito_template.has_resource_properties("AWS::ApiGatewayV2::Authorizer", {
        "AuthorizerType": "REQUEST", "IdentitySource": [TOKEN_IDENTITY_SOURCE]})


def test_token_authorizer_waits_for_the_policy_that_reads_its_secret(
        token_template: Template) -> None:
    (secret_id,) = token_template.find_resources("AWS::SecretsManager::Secret")
    policies = token_template.find_resources("AWS::IAM::Policy", {"Properties": {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Action": Match.array_with(["secretsmanager:GetSecretValue"]),
            "Resource": {"Ref": secret_id}})])}}})
    (policy_id,) = policies
    (function,) = token_template.find_resources("AWS::Lambda::Function").values()
    assert function["DependsOn"] == [policy_id]


def test_jwt_authorizer_has_no_empty_depends_on(cognito_template: Template) -> None:
    (function,) = cognito_template.find_resources("AWS::Lambda::Function").values()
    assert function.get("DependsOn") != []


def test_the_cognito_app_client_has_no_oauth_grants_or_example_callback(
        cognito_template: Template) -> None:
    (client,) = cognito_template.find_resources("AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    for key in ("AllowedOAuthFlows", "CallbackURLs", "AllowedOAuthScopes"):
        assert key not in props, f"{key}: {props.get(key)!r}"
    assert props.get("AllowedOAuthFlowsUserPoolClient") in (None, False)
    assert props["ExplicitAuthFlows"] == ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
