"""The synthesized stack: only ack routes are two-way (route response + integration responses)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.local.cfn import resolve_stack
from pipeline.local.gateway import build_api_model
from pipeline.registry import load_all

pytestmark = pytest.mark.synth


def _of_type(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template["Resources"]
    return {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == rtype}


def _ref(value: Any) -> str:
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    joined = value["Fn::Join"][1]  # "integrations/" + {"Ref": id}
    return str(joined[-1]["Ref"])


def test_the_default_acked_routes_are_chat_send_only() -> None:
    acked = {r for spec in load_all() for r in spec.ack_routes}
    assert acked == {"send"}


def test_route_responses_exist_only_on_ack_routes(stack_template: dict[str, Any]) -> None:
    # ... and on the gateway's own MOCK routes, ping and whoami (test_infra_keepalive.py)
    routes = _of_type(stack_template, "AWS::ApiGatewayV2::Route")
    by_id = {lid: props["RouteKey"] for lid, props in routes.items()}
    answered = {by_id[_ref(p["RouteId"])]: p["RouteResponseKey"] for p in
                _of_type(stack_template, "AWS::ApiGatewayV2::RouteResponse").values()}
    # $connect's is AWS's sample's (tests/infrastructure/test_infra_connect.py), one-way still;
    # ping's is the keepalive's pong, whoami's the connection id (MOCK integrations)
    assert answered == {"send": "$default", "$connect": "$default", "ping": "$default",
                        "whoami": "$default"}
    two_way = {p["RouteKey"] for p in routes.values() if "RouteResponseSelectionExpression" in p}
    assert two_way == {"send", "ping", "whoami"}


def test_integration_responses_belong_to_the_acked_integration_only(
        stack_template: dict[str, Any]) -> None:
    routes = _of_type(stack_template, "AWS::ApiGatewayV2::Route").values()
    target = {p["RouteKey"]: _ref(p["Target"]) for p in routes}
    responses = [p for p in _of_type(stack_template, "AWS::ApiGatewayV2::IntegrationResponse")
                 .values() if _ref(p["IntegrationId"]) not in (
                     target["$connect"], target["ping"], target["whoami"])]
    owners = {_ref(p["IntegrationId"]) for p in responses}
    assert owners == {target["send"]}
    assert target["echo"] != target["send"] and target["join"] == target["echo"]
    keys = {p["IntegrationResponseKey"]: p for p in responses}
    assert set(keys) == {"/2\\d\\d/", "/4\\d\\d/", "/5\\d\\d/", "$default"}
    assert '"action":"ack"' in keys["/2\\d\\d/"]["ResponseTemplates"]["$default"]
    for key in ("/4\\d\\d/", "/5\\d\\d/", "$default"):
        assert '"action":"nack"' in keys[key]["ResponseTemplates"]["$default"]
        assert "@@" not in keys[key]["ResponseTemplates"]["$default"]
    assert {p["TemplateSelectionExpression"] for p in responses} == {"\\$default"}


def test_the_twin_model_reads_two_way_routes(stack_template: dict[str, Any],
                                             cloud_assembly: Any) -> None:
    stack = resolve_stack(stack_template, "AckModel-dev", cloud_assembly)
    model = build_api_model(stack, "dev")
    send, echo = model.routes["send"], model.routes["echo"]
    assert send.two_way and send.integration is not None
    assert [r.key for r in sorted(send.integration.responses, key=lambda r: r.key)] == [
        "$default", "/2\\d\\d/", "/4\\d\\d/", "/5\\d\\d/"]
    assert not echo.two_way and echo.integration is not None
    assert echo.integration.responses == ()


@pytest.mark.parametrize("bad", ["$default", "nosuchroute"])
def test_an_ack_route_must_be_a_custom_stream_route(bad: str) -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_kinesis as kinesis

    from pipeline.infrastructure import InfrastructureError
    from pipeline.infrastructure.config import PipelineConfig
    from pipeline.infrastructure.websocket_ingress import WebSocketIngress

    stack = Stack(App(), "Bare")
    table = dynamodb.TableV2(stack, "T", partition_key=dynamodb.Attribute(
        name="pk", type=dynamodb.AttributeType.STRING))
    with pytest.raises(InfrastructureError, match="not custom stream routes"):
        WebSocketIngress(stack, "Ingress", config=PipelineConfig(), stream=kinesis.Stream(
            stack, "S"), table=table, custom_routes=["send"], ack_routes=[bad])
