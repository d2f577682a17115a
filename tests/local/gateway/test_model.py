"""build_api_model: from resolved stack resources, hand-made and synthesized."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from gateway_kit import ROLE_ARN, resources
from stacks import stack_of

from pipeline.local.gateway import ApiModelError, build_api_model
from pipeline.local.gateway.protocol import GatewayProtocol, IntegrationCall


def test_routes_integrations_and_stage() -> None:
    api = build_api_model(stack_of(resources()), "dev")
    assert api.api_id == "a1b2c3d4e5"
    assert api.route_selection_expression == "$request.body.action"
    assert set(api.routes) == {"$connect", "$disconnect", "$default", "echo", "chat"}
    connect = api.routes["$connect"].integration
    assert connect is not None
    assert (connect.service, connect.action, connect.credentials_arn) == (
        "dynamodb", "PutItem", ROLE_ARN)
    assert connect.request_template is not None and "CONN#" in connect.request_template
    echo = api.routes["echo"].integration
    assert echo is not None and echo.action == "PutRecord"


def test_unknown_stage_and_bad_target_are_errors() -> None:
    with pytest.raises(ApiModelError, match="no stage 'prod'"):
        build_api_model(stack_of(resources()), "prod")
    res = resources()
    res["Routeecho"]["Properties"]["Target"] = "integrations/nope"
    with pytest.raises(ApiModelError, match="Routeecho"):
        build_api_model(stack_of(res), "dev")
    with pytest.raises(ApiModelError, match="exactly one WebSocket API"):
        build_api_model(stack_of({}), "dev")


def test_non_aws_integration_is_an_error() -> None:
    res = resources()
    res["StreamInt"]["Properties"]["IntegrationType"] = "AWS_PROXY"
    with pytest.raises(ApiModelError, match="AWS only"):
        build_api_model(stack_of(res), "dev")


@pytest.mark.synth
@pytest.mark.skipif(importlib.util.find_spec("pipeline.local.cfn") is None,
                    reason="the template resolver pipeline/local/cfn.py is missing")
def test_model_of_the_synthesized_stack(cloud_assembly: Path,
                                        stack_template: dict[str, Any]) -> None:
    from pipeline.local.cfn import resolve_stack
    from pipeline.registry import load_all

    stack = resolve_stack(stack_template, "WebSocketPipeline-dev", cloud_assembly)
    api = build_api_model(stack, "dev")
    custom = {r for spec in load_all() for r in spec.api_routes}
    assert set(api.routes) == {"$connect", "$disconnect", "$default", "ping", "whoami", *custom}
    for mock_route in ("ping", "whoami"):
        route = api.routes[mock_route]
        assert route.two_way and route.integration is not None
        assert (route.integration.service, route.integration.action) == ("mock", "MOCK")
    connect = api.routes["$connect"].integration
    assert connect is not None and connect.action == "PutItem"
    assert connect.request_template is not None and "@@" not in connect.request_template
    for key in ("$disconnect", "$default", *custom):
        integration = api.routes[key].integration
        assert integration is not None and integration.action == "PutRecord"
        assert integration.credentials_arn and integration.credentials_arn.startswith("arn:aws:iam")
    # The synthesized template (placeholders filled by the stack) keeps hostile frames intact.
    protocol = GatewayProtocol(api)
    conn = protocol.open(source_ip="127.0.0.1", user_agent="ua", domain_name="h")
    frame = '{"action":"echo","connectionId":"forged"}\'"\\\u2028😀'
    call = protocol.message(conn, frame)
    assert isinstance(call, IntegrationCall)
    put = json.loads(call.body)
    envelope = json.loads(base64.b64decode(put["Data"]))
    assert (envelope["body"], envelope["connectionId"]) == (frame, conn.connection_id)
    assert put["StreamName"] == stack.of_type("AWS::Kinesis::Stream")[0].ref
