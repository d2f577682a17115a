"""The integration's Content-Type reaches the twin's Kinesis, which reads only what Kinesis reads.

Kinesis takes ``application/x-amz-json-1.1`` (or CBOR 1.1, as CBOR); a Kinesis integration must send it as a
static request parameter, as AWS's Kinesis proxy tutorial does. The twin takes the header from the
template's ``RequestParameters`` (else API Gateway's default type), so a stack without it fails
here as it would on AWS (pipeline/local/content_types.py).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import cbor2
import orjson
import pytest
from gateway_kit import ROLE_ARN, STREAM_NAME, TABLE_NAME, resources
from polling import until
from stacks import aws_services, stack_of
from websockets.asyncio.client import connect

from pipeline.local.content_types import (
    GATEWAY_DEFAULT,
    KINESIS_CBOR,
    KINESIS_JSON,
    kinesis_refusal,
    media_type,
)
from pipeline.local.gateway import Gateway, build_api_model
from pipeline.local.gateway.protocol import GatewayProtocol, IntegrationCall
from pipeline.local.services import AwsServices
from pipeline.local.twin import TwinBackend

PARAMETER = "integration.request.header.Content-Type"


def with_content_type(value: str | None) -> dict[str, dict[str, Any]]:
    """The kit's API, its Kinesis integration sending *value* (None: no request parameter)."""
    res = copy.deepcopy(resources())
    if value is not None:
        res["StreamInt"]["Properties"]["RequestParameters"] = {PARAMETER: f"'{value}'"}
    return res


@pytest.mark.parametrize(("content_type", "status", "error"), [
    (KINESIS_JSON, None, None),
    ("Application/X-Amz-Json-1.1; charset=utf-8", None, None),
    ("application/x-amz-cbor-1.1", None, None),  # read as CBOR (see below)
    ("application/json", 404, "UnknownOperationException"),
    ("application/x-amz-json-1.0", 404, "UnknownOperationException"),
    ("", 404, "UnknownOperationException"),
])
def test_kinesis_reads_json_1_1_and_cbor_1_1_only(content_type: str, status: int | None,
                                     error: str | None) -> None:
    refused = kinesis_refusal(content_type)
    assert (refused and (refused.status, refused.error_type)) == (
        (status, error) if status else None)
    assert media_type("A/B ; x=1") == "a/b"


@pytest.fixture(scope="module")
def services() -> Iterator[AwsServices]:
    with aws_services() as svc:
        svc.client("kinesis").create_stream(StreamName=STREAM_NAME, ShardCount=1)
        # The roster $connect writes: a failed write refuses the connect (--connect-failure).
        svc.client("dynamodb").create_table(
            TableName=TABLE_NAME, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}])
        yield svc


def _put(svc: AwsServices, content_type: str | None) -> Any:
    body = orjson.dumps({"StreamName": STREAM_NAME, "PartitionKey": "k",
                         "Data": base64.b64encode(b"x").decode()})
    return svc.call_aws("kinesis", "PutRecord", body, ROLE_ARN, content_type)


def test_the_kinesis_door_applies_the_rule(services: AwsServices) -> None:
    assert _put(services, KINESIS_JSON).status == 200
    assert _put(services, None).status == 200  # an SDK's own call (boto3, the consumers)
    missing = _put(services, GATEWAY_DEFAULT)
    assert (missing.status, missing.error_type) == (404, "UnknownOperationException")
    ddb = services.call_aws("dynamodb", "PutItem", b'{"TableName":"none","Item":{}}', None,
                            GATEWAY_DEFAULT)  # the rule is Kinesis's; DynamoDB answers itself
    assert ddb.error_type == "ResourceNotFoundException"


def test_the_kinesis_door_reads_cbor_and_refuses_json_text_sent_as_cbor(
        services: AwsServices) -> None:
    json_text = _put(services, KINESIS_CBOR)  # every body this project sends is JSON text
    assert (json_text.status, json_text.error_type) == (400, "SerializationException")
    assert cbor2.loads(json_text.body) == {
        "__type": "SerializationException",
        "message": "Start of structure or map found where not expected."}
    body = cbor2.dumps({"StreamName": STREAM_NAME, "PartitionKey": "k", "Data": b"\x00cbor"})
    real = services.call_aws("kinesis", "PutRecord", body, ROLE_ARN, KINESIS_CBOR)
    assert real.status == 200, real.body
    assert cbor2.loads(real.body)["ShardId"] == "shardId-000000000000"


@pytest.fixture
async def gateway_for(services: AwsServices) -> AsyncIterator[Any]:
    started: list[Gateway] = []

    async def start(content_type: str | None) -> Gateway:
        gateway = Gateway(build_api_model(stack_of(with_content_type(content_type)), "dev"),
                          TwinBackend(services), stage="dev", port=0)
        await gateway.start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


def _stored(services: AwsServices) -> int:
    stream = services.kinesis.stream(STREAM_NAME)
    return sum(len(shard) for shard in stream.shards.values())


async def test_a_kinesis_integration_without_the_header_fails_every_frame(
        services: AwsServices, gateway_for: Any) -> None:
    gateway = await gateway_for(None)
    before = _stored(services)
    async with connect(f"ws://127.0.0.1:{gateway.port}/dev", open_timeout=5) as ws:
        await ws.send('{"action":"echo","data":1}')
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert frame["message"] == "Internal server error"
    assert _stored(services) == before


async def test_a_kinesis_integration_with_the_header_stores_the_frame(
        services: AwsServices, gateway_for: Any) -> None:
    gateway = await gateway_for(KINESIS_JSON)
    before = _stored(services)
    async with connect(f"ws://127.0.0.1:{gateway.port}/dev", open_timeout=5) as ws:
        await ws.send('{"action":"echo","data":1}')
        await until(lambda: _stored(services) == before + 1)


def test_the_model_reads_the_header_from_request_parameters() -> None:
    api = build_api_model(stack_of(with_content_type(KINESIS_JSON)), "dev")
    echo = api.routes["echo"].integration
    assert echo is not None and echo.static_header("content-type") == KINESIS_JSON
    mapped = copy.deepcopy(resources())
    mapped["StreamInt"]["Properties"]["RequestParameters"] = {
        PARAMETER: "route.request.header.Content-Type"}  # not a constant: not a static header
    echo = build_api_model(stack_of(mapped), "dev").routes["echo"].integration
    assert echo is not None and echo.static_header("Content-Type") is None


@pytest.mark.synth
def test_the_synthesized_kinesis_integrations_send_what_their_template_says(
        stack_template: dict[str, Any], cloud_assembly: Any) -> None:
    """Read, not hard-coded: each Kinesis integration's Content-Type is its RequestParameters'
    static value (else API Gateway's default), and the twin's Kinesis accepts it exactly when
    that value is JSON 1.1 (or CBOR 1.1)."""
    from pipeline.local.cfn import resolve_stack

    stack = resolve_stack(stack_template, "ContentType-dev", cloud_assembly)
    api = build_api_model(stack, "dev")
    protocol = GatewayProtocol(api)
    conn = protocol.open(source_ip="127.0.0.1", user_agent="t", domain_name="d")
    kinesis_routes = [r for r in api.routes.values()
                      if r.integration is not None and r.integration.service == "kinesis"]
    assert kinesis_routes
    for route in kinesis_routes:
        assert route.integration is not None
        if route.route_key == "$disconnect":
            continue  # not selectable by a frame; same integration as $default
        declared = route.integration.request_parameters.get(PARAMETER)
        call = protocol.message(conn, json.dumps({"action": route.route_key, "room": "r"}))
        assert isinstance(call, IntegrationCall)
        sent = call.content_type
        assert sent == (declared.strip("'") if declared else GATEWAY_DEFAULT)
        assert (kinesis_refusal(sent) is None) == (media_type(sent) in (KINESIS_JSON,
                                                                        KINESIS_CBOR))
