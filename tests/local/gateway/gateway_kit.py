"""Gateway test kit: a hand-resolved API, a recording integration backend, a running gateway.

Imported by the tests as ``gateway_kit`` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks import stack_of

from pipeline.local.errors import FunctionError
from pipeline.local.gateway import (
    AwsResponse,
    Gateway,
    GatewayLimits,
    GatewayRules,
    build_api_model,
)

TEMPLATES = Path(__file__).resolve().parents[3] / "integration_templates"
API_ID = "a1b2c3d4e5"
ROLE_ARN = "arn:aws:iam::123456789012:role/IntegrationRole"
STREAM_NAME = "ws-stream"
TABLE_NAME = "ws-roster"


def resources(*, routes: tuple[str, ...] = ("$connect", "$disconnect", "$default", "echo", "chat"),
              ) -> dict[str, dict[str, Any]]:
    """Stack resources as the orchestrator passes them: every intrinsic already resolved."""
    connect = (TEMPLATES / "connect_put_item.vtl").read_text().replace(
        "@@TABLE_NAME@@", TABLE_NAME).replace("@@CONNECTION_TTL_SECONDS@@", "10800")
    stream = (TEMPLATES / "stream_put_record.vtl").read_text().replace(
        "@@STREAM_NAME@@", STREAM_NAME)

    def integration(action: str, service: str, template: str) -> dict[str, Any]:
        return {"Type": "AWS::ApiGatewayV2::Integration", "Ref": f"int{action}", "Properties": {
            "ApiId": API_ID, "IntegrationType": "AWS", "IntegrationMethod": "POST",
            "IntegrationUri": f"arn:aws:apigateway:us-east-1:{service}:action/{action}",
            "CredentialsArn": ROLE_ARN, "RequestTemplates": {"$default": template},
            "TemplateSelectionExpression": "\\$default", "PassthroughBehavior": "NEVER"}}

    res: dict[str, dict[str, Any]] = {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Ref": API_ID, "Properties": {
            "Name": "ws", "ProtocolType": "WEBSOCKET",
            "RouteSelectionExpression": "$request.body.action"}},
        "ConnectInt": integration("PutItem", "dynamodb", connect),
        "StreamInt": integration("PutRecord", "kinesis", stream),
        "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "Ref": "dev", "Properties": {
            "ApiId": API_ID, "StageName": "dev", "AutoDeploy": True}},
    }
    for key in routes:
        target = "intPutItem" if key == "$connect" else "intPutRecord"
        res[f"Route{key.strip('$')}"] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
            "ApiId": API_ID, "RouteKey": key, "AuthorizationType": "NONE",
            "Target": f"integrations/{target}"}}
    return res


AUTHORIZER_ARN = "arn:aws:lambda:us-east-1:123456789012:function:connect-authz"


def with_authorizer(res: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """*res* with a Lambda REQUEST authorizer on $connect."""
    res["Authorizer"] = {"Type": "AWS::ApiGatewayV2::Authorizer", "Ref": "authz01", "Properties": {
        "ApiId": API_ID, "AuthorizerType": "REQUEST", "Name": "authz",
        "AuthorizerUri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
                         f"{AUTHORIZER_ARN}/invocations"}}
    res["Routeconnect"]["Properties"].update(AuthorizationType="CUSTOM", AuthorizerId="authz01")
    return res


@dataclass
class Call:
    service: str
    action: str
    request: dict[str, Any]
    content_type: str | None = None

    @property
    def envelope(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(base64.b64decode(self.request["Data"]))
        return data


@dataclass
class RecordingBackend:
    """IntegrationBackend that records every call; ``fail`` maps an action to an AWS error."""

    calls: list[Call] = field(default_factory=list)
    fail: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call_aws(self, service: str, action: str, body: bytes,
                 credentials_arn: str | None, content_type: str | None = None) -> AwsResponse:
        assert credentials_arn == ROLE_ARN
        with self.lock:
            self.calls.append(Call(service, action, json.loads(body), content_type))
        error = self.fail.get(action)
        if error is not None:
            return AwsResponse(400, json.dumps({"__type": error}).encode(), error)
        return AwsResponse(200, b"{}", None)

    authorizer: Callable[[dict[str, Any]], Any] | None = None
    invocations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def invoke_function(self, function_arn: str, event: dict[str, Any]) -> Any:
        self.invocations.append((function_arn, event))
        if self.authorizer is None:
            raise RuntimeError("no function")
        try:
            return self.authorizer(event)
        except Exception as exc:  # as the twin's workers answer: Lambda's error payload
            raise FunctionError(function_arn, {"errorMessage": str(exc),
                                               "errorType": type(exc).__name__}) from exc

    def of(self, action: str, route_key: str | None = None) -> list[Call]:
        with self.lock:
            calls = [c for c in self.calls if c.action == action]
        if route_key is not None:
            calls = [c for c in calls if c.envelope["routeKey"] == route_key]
        return calls


@dataclass
class Running:
    gateway: Gateway
    backend: RecordingBackend

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway.port}/dev"

    @property
    def connections_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port}/dev"


async def start_gateway(limits: GatewayLimits | None = None,
                        res: dict[str, dict[str, Any]] | None = None,
                        rules: GatewayRules | None = None) -> Running:
    backend = RecordingBackend()
    gateway = Gateway(build_api_model(stack_of(res or resources()), "dev"), backend, stage="dev", port=0,
                      limits=limits or GatewayLimits(), rules=rules or GatewayRules())
    await gateway.start()
    return Running(gateway, backend)
