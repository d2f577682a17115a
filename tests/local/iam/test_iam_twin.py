"""The running twin (the session's shared one) enforces IAM by default, wired end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from iam_kit import function_named

from pipeline.aws.limits import REGION
from pipeline.local.cfn import Stack, resolve_stack
from pipeline.local.harness import TwinProcess
from pipeline.local.iam.access import function_access_key, function_secret_key

pytestmark = [pytest.mark.synth, pytest.mark.twin]


@pytest.fixture(scope="module")
def twin_stack(stack_template: dict[str, Any], cloud_assembly: Path) -> Stack:
    """The stack exactly as the twin resolves it (same stack name, same physical names)."""
    return resolve_stack(stack_template, "WebSocketPipeline-dev", cloud_assembly)


def _as_function(service: str, url: str, stack: Stack, prefix: str) -> Any:
    name = function_named(stack, prefix)
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id=function_access_key(name),
                        aws_secret_access_key=function_secret_key(name),
                        aws_session_token="twin")


def test_function_keys_carry_their_roles(twin: TwinProcess, twin_stack: Stack) -> None:
    table = twin_stack.outputs.get("RosterTableName") or (
        twin_stack.of_type("AWS::DynamoDB::Table")
        + twin_stack.of_type("AWS::DynamoDB::GlobalTable"))[0].ref
    query: dict[str, Any] = {"TableName": table, "KeyConditionExpression": "pk = :p",
                             "ExpressionAttributeValues": {":p": {"S": "ROOM#iam"}}}
    # no consumer role may list tables (resource "*"); the chat role may query the roster
    echo = _as_function("dynamodb", twin.aws, twin_stack, "ConsumerechoFunction")
    with pytest.raises(ClientError) as denied:
        echo.list_tables()
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:ListTables on resource: *" in denied.value.response["Error"]["Message"]
    chat = _as_function("dynamodb", twin.aws, twin_stack, "ConsumerchatFunction")
    assert chat.query(**query)["Count"] == 0
    admin = boto3.client("dynamodb", endpoint_url=twin.aws, region_name=REGION,
                         aws_access_key_id="test", aws_secret_access_key="test")
    assert table in admin.list_tables()["TableNames"]


def test_connections_allowed_for_a_role_with_manage_connections(twin: TwinProcess,
                                                                 twin_stack: Stack) -> None:
    endpoint = twin.connections.rsplit("/@connections", 1)[0]
    echo = _as_function("apigatewaymanagementapi", endpoint, twin_stack, "ConsumerechoFunction")
    with pytest.raises(echo.exceptions.GoneException):  # authorized, then 410: not connected
        echo.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
