"""Shared fixtures of tests/runtime and tests/consumers: the @connections stub, a moto roster
table, a handler context (imported by both conftest.py files)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from connections_stub import AtConnections, serve
from moto import mock_aws

from pipeline.runtime import ConnectionsClient, HandlerContext, RetryPolicy, Roster
from pipeline.runtime.context import forget_pruned
from pipeline.runtime.observability import metrics

TABLE = "WebSocketPipeline-dev-Roster"
FAST_RETRY = RetryPolicy(max_attempts=4, base_s=0.001, cap_s=0.005)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def atconn(aws_env: None) -> Iterator[AtConnections]:
    with serve() as state:
        yield state


@pytest.fixture
def connections(atconn: AtConnections) -> Iterator[ConnectionsClient]:
    client = ConnectionsClient(atconn.url, retry=FAST_RETRY, workers=16)
    yield client
    client.close()


@pytest.fixture
def ddb(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"},
                                  {"AttributeName": "principalKey", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{  # the stack's sparse byPrincipal index
                "IndexName": "byPrincipal",
                "KeySchema": [{"AttributeName": "principalKey", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        )
        yield client


@pytest.fixture
def roster(ddb: Any) -> Roster:
    return Roster(TABLE, client=ddb)


def put_meta(ddb: Any, cid: str, principal: str = "") -> None:
    """The META item the $connect VTL writes (``principalKey`` only when authenticated)."""
    item = {
        "pk": {"S": f"CONN#{cid}"}, "sk": {"S": "META"}, "connectionId": {"S": cid},
        "connectedAt": {"N": "1700000000000"}, "sourceIp": {"S": "203.0.113.7"},
        "principal": {"S": principal}, "expiresAt": {"N": "1700010800"}}
    if principal:
        item["principalKey"] = {"S": principal}
    ddb.put_item(TableName=TABLE, Item=item)


def all_items(ddb: Any) -> list[tuple[str, str]]:
    items = ddb.scan(TableName=TABLE)["Items"]
    return sorted((i["pk"]["S"], i["sk"]["S"]) for i in items)


@pytest.fixture
def ctx(connections: ConnectionsClient, roster: Roster) -> Iterator[HandlerContext]:
    forget_pruned()
    metrics.clear_metrics()  # metrics are per container: start each test with none pending
    yield HandlerContext(connections_client=connections, roster_client=roster)
    forget_pruned()
