"""IAM of the real synthesized stack, enforced by the real gateway and services in process."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError
from iam_kit import function_named, role_of, without_action
from polling import until
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pipeline.aws.limits import REGION
from pipeline.local.cfn import Stack
from pipeline.local.gateway import Gateway, GatewayRules, build_api_model
from pipeline.local.iam.access import AccessControl, function_access_key, function_secret_key
from pipeline.local.iam.gateway_access import GatewayAccess
from pipeline.local.iam.integration import integration_denied
from pipeline.local.iam.wsgi import GuardedAwsServer, IamMiddleware
from pipeline.local.kinesis.wsgi import KinesisApp
from pipeline.local.services import AwsServices
from pipeline.local.twin import TwinBackend
from pipeline.runtime.exceptions import AwsCallError
from pipeline.runtime.shardcount import describer, kinesis_api

pytestmark = pytest.mark.synth


def _stream(stack: Stack) -> Any:
    return stack.of_type("AWS::Kinesis::Stream")[0]


async def _gateway(stack: Stack, services: AwsServices, access: AccessControl,
                   rules: GatewayRules | None = None) -> Gateway:
    api = build_api_model(stack, "dev")
    gateway = Gateway(api, TwinBackend(services), stage="dev", port=0,
                      access=GatewayAccess(access, api.api_id, "dev"),
                      rules=rules or GatewayRules())
    await gateway.start()
    return gateway


@pytest.fixture
async def no_put_record(iam_stack: Stack, services: AwsServices) -> AsyncIterator[Gateway]:
    """The gateway over a stack whose integration role lost ``kinesis:PutRecord``."""
    services.access = AccessControl.from_stack(without_action(iam_stack, "kinesis:PutRecord"))
    gateway = await _gateway(iam_stack, services, services.access)
    yield gateway
    await gateway.stop()
    services.access = None


async def test_integration_role_without_put_record_gets_aws_error_frame(
        iam_stack: Stack, services: AwsServices, no_put_record: Gateway) -> None:
    role = role_of(iam_stack, "WebSocketIngressIntegrationRole")
    stream = _stream(iam_stack)
    body = orjson.dumps({"StreamName": stream.ref, "PartitionKey": "k", "Data": "e30="})
    answer = services.call_aws("kinesis", "PutRecord", body, role)
    assert answer.status == 400 and answer.error_type == "AccessDeniedException"
    role_name = role.rsplit("/", 1)[1]
    assert orjson.loads(answer.body) == {
        "__type": "AccessDeniedException",
        "message": f"User: arn:aws:sts::123456789012:assumed-role/{role_name}/"
                   "BackplaneAssumeRoleSession is not authorized to perform: kinesis:PutRecord "
                   f"on resource: {stream.attributes['Arn']} because no identity-based policy "
                   "allows the kinesis:PutRecord action"}
    before = services.kinesis.stream(stream.ref)
    counts = [len(s) for s in before.shards.values()]
    # $connect (dynamodb:PutItem) is still allowed: the client connects, its frames fail
    async with connect(f"ws://127.0.0.1:{no_put_record.port}/dev", open_timeout=5) as ws:
        await ws.send('{"action": "echo", "data": 1}')
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert frame["message"] == "Internal server error"
    assert set(frame) == {"message", "connectionId", "requestId"}
    assert [len(s) for s in before.shards.values()] == counts  # nothing was written


async def test_integration_role_without_put_item_refuses_connect(
        iam_stack: Stack, services: AwsServices) -> None:
    """Under ``--connect-failure refuse``, the default (test_server.py)."""
    services.access = AccessControl.from_stack(without_action(iam_stack, "dynamodb:PutItem"))
    gateway = await _gateway(iam_stack, services, services.access,
                             GatewayRules(connect_failure="refuse"))
    try:
        role = role_of(iam_stack, "WebSocketIngressIntegrationRole")
        answer = services.call_aws("dynamodb", "PutItem", b'{"TableName": "t", "Item": {}}', role)
        assert answer.status == 400 and answer.error_type == "AccessDeniedException"
        assert orjson.loads(answer.body)["__type"] == \
            "com.amazonaws.dynamodb.v20120810#AccessDeniedException"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{gateway.port}/dev", open_timeout=5):
                pass
        assert refused.value.response.status_code == 500
    finally:
        await gateway.stop()
        services.access = None


def test_put_record_check_cost(iam_stack: Stack) -> None:
    """The hot path: one cached decision per frame. Reported in µs per check."""
    access = AccessControl.from_stack(iam_stack)
    role = role_of(iam_stack, "WebSocketIngressIntegrationRole")
    body = orjson.dumps({"StreamName": _stream(iam_stack).ref, "PartitionKey": "abc",
                         "Data": base64.b64encode(b"x" * 300).decode()})
    assert integration_denied(access, "kinesis", "PutRecord", body, role) is None
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        integration_denied(access, "kinesis", "PutRecord", body, role)
    per_check_us = (time.perf_counter() - start) / n * 1e6
    cold = AccessControl.from_stack(iam_stack)
    start = time.perf_counter()
    cold.decide(role, "kinesis:PutRecord", _stream(iam_stack).attributes["Arn"])
    uncached_us = (time.perf_counter() - start) * 1e6
    print(f"IAM PutRecord check: {per_check_us:.2f} µs cached (body parse included), "
          f"{uncached_us:.1f} µs first evaluation")
    assert per_check_us < 100


@pytest.fixture(scope="module")
def guarded_aws(iam_stack: Stack, services: AwsServices) -> Iterator[str]:
    """The AWS port (the twin's Kinesis, moto) behind the IAM middleware, as the twin serves it to its functions; the echo
    function's role has lost ``dynamodb:Query``."""
    stack = without_action(iam_stack, "dynamodb:Query", policy_prefix="ConsumerechoFunction")
    access = AccessControl.from_stack(stack)
    server = GuardedAwsServer("127.0.0.1", 0, KinesisApp(services.kinesis_wire),
                              wrap=lambda app: IamMiddleware(app, access, access.secret_arns))
    host, port = server.start()
    yield f"http://{host}:{port}"
    server.stop()


def _client(service: str, url: str, key: str, secret: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        aws_session_token="twin")


def _function_client(service: str, url: str, stack: Stack, prefix: str) -> Any:
    name = function_named(stack, prefix)
    return _client(service, url, function_access_key(name), function_secret_key(name))


def test_function_role_without_query_gets_access_denied(iam_stack: Stack,
                                                         guarded_aws: str) -> None:
    table = (iam_stack.of_type("AWS::DynamoDB::Table")
             + iam_stack.of_type("AWS::DynamoDB::GlobalTable"))[0]
    query: dict[str, Any] = {"TableName": table.ref, "KeyConditionExpression": "pk = :p",
                             "ExpressionAttributeValues": {":p": {"S": "ROOM#r"}}}
    echo = _function_client("dynamodb", guarded_aws, iam_stack, "ConsumerechoFunction")
    with pytest.raises(ClientError) as denied:
        echo.query(**query)
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Message"].endswith(
        f"is not authorized to perform: dynamodb:Query on resource: {table.attributes['Arn']} "
        "because no identity-based policy allows the dynamodb:Query action")
    assert "assumed-role/" in error["Message"]
    # the chat role has dynamodb:Query on the roster; an administrator's key may do anything
    chat = _function_client("dynamodb", guarded_aws, iam_stack, "ConsumerchatFunction")
    assert chat.query(**query)["Items"] == []
    assert _client("dynamodb", guarded_aws, "test", "test").query(**query)["Items"] == []


def _runtime_describe(url: str, stack: Stack, prefix: str) -> int:
    """The runtime's own DescribeStreamSummary (no boto3), signed with the function's keys as
    the twin's workers get them in their environment."""
    name = function_named(stack, prefix)
    api = kinesis_api({"AWS_ENDPOINT_URL": url, "AWS_REGION": REGION,
                       "AWS_ACCESS_KEY_ID": function_access_key(name),
                       "AWS_SECRET_ACCESS_KEY": function_secret_key(name),
                       "AWS_SESSION_TOKEN": "twin"})
    return describer(_stream(stack).ref, api)()


def test_the_runtime_s_describe_stream_summary_is_allowed_to_a_consumer(
        iam_stack: Stack, guarded_aws: str) -> None:
    assert _runtime_describe(guarded_aws, iam_stack, "ConsumerechoFunction") >= 1


def test_the_runtime_s_describe_stream_summary_without_the_action_is_denied(
        iam_stack: Stack, services: AwsServices) -> None:
    stack = without_action(iam_stack, "kinesis:DescribeStreamSummary",
                           policy_prefix="ConsumerechoFunction")
    access = AccessControl.from_stack(stack)
    server = GuardedAwsServer("127.0.0.1", 0, KinesisApp(services.kinesis_wire),
                              wrap=lambda app: IamMiddleware(app, access, access.secret_arns))
    host, port = server.start()
    try:
        with pytest.raises(AwsCallError) as denied:
            _runtime_describe(f"http://{host}:{port}", stack, "ConsumerechoFunction")
    finally:
        server.stop()
    assert (denied.value.code, denied.value.status) == ("AccessDeniedException", 400)
    assert "kinesis:DescribeStreamSummary" in str(denied.value)


def test_function_role_sqs_only_its_own_queue(iam_stack: Stack, guarded_aws: str) -> None:
    queues = {q.logical_id: q for q in iam_stack.of_type("AWS::SQS::Queue")}
    own = next(q for lid, q in queues.items() if lid.startswith("ConsumerchatOnFailure"))
    other = next(q for lid, q in queues.items() if lid.startswith("ConsumerechoOnFailure"))
    chat = _function_client("sqs", guarded_aws, iam_stack, "ConsumerchatFunction")
    url = chat.get_queue_url(QueueName=own.attributes["QueueName"])["QueueUrl"]
    chat.send_message(QueueUrl=url, MessageBody="ok")
    other_url = url.replace(own.attributes["QueueName"], other.attributes["QueueName"])
    with pytest.raises(ClientError) as denied:
        chat.send_message(QueueUrl=other_url, MessageBody="no")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "sqs:SendMessage" in denied.value.response["Error"]["Message"]


async def test_connections_without_manage_connections_is_forbidden(
        iam_stack: Stack, services: AwsServices) -> None:
    stack = without_action(iam_stack, "execute-api:ManageConnections")
    access = AccessControl.from_stack(stack)
    gateway = await _gateway(stack, services, access)
    try:
        url = f"http://127.0.0.1:{gateway.port}/dev"
        async with connect(f"ws://127.0.0.1:{gateway.port}/dev", open_timeout=5):
            await until(lambda: bool(gateway.connection_ids))
            cid = gateway.connection_ids[0]
            echo = _function_client("apigatewaymanagementapi", url, stack,
                                    "ConsumerechoFunction")
            with pytest.raises(echo.exceptions.ForbiddenException) as denied:
                await asyncio.to_thread(echo.post_to_connection, ConnectionId=cid, Data=b"x")
            message = denied.value.response["Error"]["Message"]
            api_id = gateway.api.api_id
            assert message.endswith(
                "is not authorized to perform: execute-api:ManageConnections on resource: "
                f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/dev/POST/@connections/"
                f"{cid} because no identity-based policy allows the "
                "execute-api:ManageConnections action")
            admin = _client("apigatewaymanagementapi", url, "test", "test")
            await asyncio.to_thread(admin.post_to_connection, ConnectionId=cid, Data=b"x")
    finally:
        await gateway.stop()


async def test_connections_with_manage_connections_allowed(
        iam_stack: Stack, services: AwsServices) -> None:
    gateway = await _gateway(iam_stack, services, AccessControl.from_stack(iam_stack))
    try:
        url = f"http://127.0.0.1:{gateway.port}/dev"
        echo = _function_client("apigatewaymanagementapi", url, iam_stack,
                                "ConsumerechoFunction")
        with pytest.raises(echo.exceptions.GoneException):  # allowed; the id is not connected
            await asyncio.to_thread(echo.post_to_connection, ConnectionId="AAAAAAAAAAAAAAA=",
                                    Data=b"x")
    finally:
        await gateway.stop()


def _mapping_problems(stack: Stack) -> list[str]:
    from pipeline.local.iam.mappings import mapping_problems

    access = AccessControl.from_stack(stack)
    roles = {f.ref: str(f.properties["Role"]) for f in stack.of_type("AWS::Lambda::Function")}
    problems: list[str] = []
    for res in stack.of_type("AWS::Lambda::EventSourceMapping"):
        p = res.properties
        destination = p["DestinationConfig"]["OnFailure"]["Destination"]
        problems += mapping_problems(access, roles[p["FunctionName"]], p["EventSourceArn"],
                                     destination)
    return problems


def test_event_source_mappings_need_read_and_destination_permissions(iam_stack: Stack) -> None:
    mappings = len(iam_stack.of_type("AWS::Lambda::EventSourceMapping"))
    assert mappings >= 1
    assert _mapping_problems(iam_stack) == []
    no_read = _mapping_problems(without_action(iam_stack, "kinesis:GetRecords"))
    assert len(no_read) == mappings and all(p.startswith("Cannot access stream arn:") for p in no_read)
    no_fan_out = _mapping_problems(without_action(iam_stack, "kinesis:SubscribeToShard"))
    assert len(no_fan_out) == mappings
    assert all(p.startswith("Cannot access stream consumer ") for p in no_fan_out)
    no_dlq = _mapping_problems(without_action(iam_stack, "sqs:SendMessage"))
    assert len(no_dlq) == mappings and all("SendMessage on SQS" in p for p in no_dlq)
