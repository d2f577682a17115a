"""The API as deployed: routes, integrations and stage, read from the resolved stack resources."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.local.cfn import Resource, Stack
from pipeline.local.gateway.errors import ApiModelError

# arn:aws:apigateway:<region>:<service>:action/<Action>
# https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-integrations.html
_AWS_ACTION_URI = re.compile(r"^arn:aws[\w-]*:apigateway:[\w-]+:([\w.-]+):action/(\w+)$")


@dataclass(frozen=True)
class IntegrationResponse:
    """``AWS::ApiGatewayV2::IntegrationResponse``: how a two-way route answers the sender.

    ``key`` is ``$default`` or ``/<regex>/`` matched against the integration's HTTP status.
    """

    key: str
    templates: Mapping[str, str] = field(default_factory=dict)
    template_selection_expression: str | None = None


@dataclass(frozen=True)
class Integration:
    """An AWS (non-proxy) integration: one service action, rendered by one request template."""

    integration_id: str
    service: str
    action: str
    credentials_arn: str | None
    request_template: str | None
    passthrough_behavior: str = "NEVER"
    responses: tuple[IntegrationResponse, ...] = ()
    request_parameters: Mapping[str, str] = field(default_factory=dict)

    def static_header(self, name: str) -> str | None:
        """The value of a static ``integration.request.header.<name>`` request parameter.

        Static values are single-quoted ('application/x-amz-json-1.1'); a mapped value
        (``route.request.header.X``) is not a constant and gives None.
        https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-data-mapping.html
        """
        wanted = f"integration.request.header.{name}".lower()
        for key, value in self.request_parameters.items():
            if key.lower() == wanted and len(value) >= 2 and value[0] == value[-1] == "'":
                return value[1:-1]
        return None


@dataclass(frozen=True)
class Route:
    """A route key and what it runs."""

    route_key: str
    integration: Integration | None
    authorization_type: str = "NONE"
    authorizer_id: str | None = None
    # Two-way: a RouteResponseSelectionExpression and a RouteResponse exist for the route.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html
    two_way: bool = False


@dataclass(frozen=True)
class ApiModel:
    """One WebSocket API stage."""

    api_id: str
    stage: str
    route_selection_expression: str
    routes: Mapping[str, Route]
    stage_variables: Mapping[str, str] = field(default_factory=dict)
    authorizers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def route(self, route_key: str) -> Route | None:
        return self.routes.get(route_key)


def _ref(logical_id: str, spec: Resource) -> str:
    return spec.ref or logical_id


def _props(spec: Resource) -> Mapping[str, Any]:
    props = spec.properties or {}
    if not isinstance(props, Mapping):
        raise ApiModelError("Properties is not an object")
    return props


def _integration_response(logical_id: str, spec: Resource) -> IntegrationResponse:
    props = _props(spec)
    key = str(props.get("IntegrationResponseKey", ""))
    if key != "$default" and not (len(key) > 2 and key.startswith("/") and key.endswith("/")):
        raise ApiModelError(f"integration response key {key!r} is neither $default nor /regex/",
                            logical_id=logical_id)
    templates = props.get("ResponseTemplates") or {}
    selection = props.get("TemplateSelectionExpression")
    return IntegrationResponse(
        key=key,
        templates={str(k): str(v) for k, v in templates.items()},
        template_selection_expression=str(selection) if selection is not None else None,
    )


def _integration(logical_id: str, spec: Resource,
                 responses: tuple[IntegrationResponse, ...] = ()) -> Integration:
    props = _props(spec)
    kind = props.get("IntegrationType")
    if kind == "MOCK":
        return _mock_integration(logical_id, spec, responses)
    if kind != "AWS":
        raise ApiModelError(f"integration type {kind!r} is not supported (AWS only)",
                            logical_id=logical_id)
    uri = str(props.get("IntegrationUri", ""))
    match = _AWS_ACTION_URI.match(uri)
    if match is None:
        raise ApiModelError(f"unsupported integration URI {uri!r}", logical_id=logical_id)
    templates = props.get("RequestTemplates") or {}
    selection = str(props.get("TemplateSelectionExpression", "\\$default"))
    # The only selection expression we honour is the constant "\$default" (docs/contracts.md).
    template = templates.get(selection.replace("\\", "")) or templates.get("$default")
    credentials = props.get("CredentialsArn")
    parameters = props.get("RequestParameters") or {}
    if not isinstance(parameters, Mapping):
        raise ApiModelError("RequestParameters is not an object", logical_id=logical_id)
    return Integration(
        integration_id=_ref(logical_id, spec),
        service=match.group(1),
        action=match.group(2),
        credentials_arn=str(credentials) if credentials else None,
        request_template=str(template) if template is not None else None,
        passthrough_behavior=str(props.get("PassthroughBehavior", "WHEN_NO_MATCH")),
        responses=responses,
        request_parameters={str(k): str(v) for k, v in parameters.items()},
    )


def _mock_integration(logical_id: str, spec: Resource,
                      responses: tuple[IntegrationResponse, ...]) -> Integration:
    """A MOCK integration: no service; its request template chooses the status (``mock.py``)."""
    from pipeline.local.gateway.mock import MOCK_ACTION, MOCK_SERVICE

    props = _props(spec)
    templates = props.get("RequestTemplates") or {}
    template = templates.get("$default")
    return Integration(
        integration_id=_ref(logical_id, spec),
        service=MOCK_SERVICE,
        action=MOCK_ACTION,
        credentials_arn=None,
        request_template=str(template) if template is not None else None,
        passthrough_behavior=str(props.get("PassthroughBehavior", "WHEN_NO_MATCH")),
        responses=responses,
    )


def build_api_model(stack: Stack, stage: str) -> ApiModel:
    """The WebSocket API of the resolved *stack* (intrinsics already resolved) at *stage*."""
    resources = stack.resources
    apis = [(lid, s) for lid, s in resources.items()
            if s.type == "AWS::ApiGatewayV2::Api"
            and _props(s).get("ProtocolType") == "WEBSOCKET"]
    if len(apis) != 1:
        raise ApiModelError(f"expected exactly one WebSocket API, found {len(apis)}")
    api_lid, api_spec = apis[0]
    api_props = _props(api_spec)
    api_id = _ref(api_lid, api_spec)

    def of_api(rtype: str) -> list[tuple[str, Resource]]:
        return [(lid, s) for lid, s in resources.items()
                if s.type == rtype and str(_props(s).get("ApiId")) == api_id]

    responses: dict[str, list[IntegrationResponse]] = {}
    for lid, s in of_api("AWS::ApiGatewayV2::IntegrationResponse"):
        owner = str(_props(s).get("IntegrationId"))
        responses.setdefault(owner, []).append(_integration_response(lid, s))
    integrations = {_ref(lid, s): _integration(lid, s, tuple(responses.get(_ref(lid, s), ())))
                    for lid, s in of_api("AWS::ApiGatewayV2::Integration")}
    answered = {str(_props(s).get("RouteId")) for _, s in of_api("AWS::ApiGatewayV2::RouteResponse")}
    authorizers = {_ref(lid, s): dict(_props(s))
                   for lid, s in of_api("AWS::ApiGatewayV2::Authorizer")}
    routes: dict[str, Route] = {}
    for lid, spec in of_api("AWS::ApiGatewayV2::Route"):
        props = _props(spec)
        target = props.get("Target")
        integration = None
        if target:
            integration_id = str(target).removeprefix("integrations/")
            integration = integrations.get(integration_id)
            if integration is None:
                raise ApiModelError(f"target {target!r} is not an integration of the API",
                                    logical_id=lid)
        key = str(props.get("RouteKey"))
        routes[key] = Route(
            route_key=key,
            integration=integration,
            authorization_type=str(props.get("AuthorizationType", "NONE")),
            authorizer_id=str(props["AuthorizerId"]) if props.get("AuthorizerId") else None,
            two_way=bool(props.get("RouteResponseSelectionExpression"))
            and _ref(lid, spec) in answered,
        )
    stages = [_props(s) for _, s in of_api("AWS::ApiGatewayV2::Stage")]
    matching = [s for s in stages if s.get("StageName") == stage]
    if stages and not matching:
        names = sorted(str(s.get("StageName")) for s in stages)
        raise ApiModelError(f"the API has no stage {stage!r} (stages: {names})")
    variables = dict(matching[0].get("StageVariables") or {}) if matching else {}
    return ApiModel(
        api_id=api_id,
        stage=stage,
        route_selection_expression=str(
            api_props.get("RouteSelectionExpression", "$request.body.action")),
        routes=routes,
        stage_variables={str(k): str(v) for k, v in variables.items()},
        authorizers=authorizers,
    )
