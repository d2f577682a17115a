"""Fixtures of tests/runtime and tests/consumers: the @connections stub, a moto roster table, a
handler context.

A pytest plugin registered in tests/conftest.py (``pytest_plugins``), so every test session
loads it: the runtime, boto3 and moto are imported when a fixture first runs, not here, and a
session that uses none of them does not pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pipeline import DEFAULT_REGION
from runtime_kit.connections_stub import AtConnections, serve
from runtime_kit.roster_table import TABLE, create_roster_table

if TYPE_CHECKING:
    from pipeline.runtime import ConnectionsClient, HandlerContext, Roster


STREAM = "ctx-stream"  # the ctx fixture's moto stream


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": DEFAULT_REGION, "AWS_DEFAULT_REGION": DEFAULT_REGION}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def atconn(aws_env: None) -> Iterator[AtConnections]:
    with serve() as state:
        yield state


@pytest.fixture
def connections(atconn: AtConnections) -> Iterator[ConnectionsClient]:
    from pipeline.runtime import ConnectionsClient
    from runtime_kit.retry import FAST_RETRY

    client = ConnectionsClient(atconn.url, retry=FAST_RETRY, workers=16)
    yield client
    client.close()


@pytest.fixture
def ddb(aws_env: None) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name=DEFAULT_REGION)
        create_roster_table(client)
        yield client


@pytest.fixture
def roster(ddb: Any) -> Roster:
    from pipeline.runtime import Roster

    return Roster(TABLE, client=ddb)


@pytest.fixture
def ctx(connections: ConnectionsClient, roster: Roster) -> Iterator[HandlerContext]:
    import boto3

    from pipeline.runtime import HandlerContext
    from pipeline.runtime.container import reset
    from pipeline.runtime.fanout import FanoutShape, PageWriter
    from pipeline.runtime.observability import pending

    reset()
    pending.clear()  # metrics are per container: start each test with none pending
    # What handlers put on the stream (presence deltas, fan-out pages) lands in moto's Kinesis.
    kinesis = boto3.client("kinesis", region_name=DEFAULT_REGION)
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    yield HandlerContext(connections_client=connections, roster_client=roster,
                         page_writer_client=PageWriter(STREAM, client=kinesis),
                         fanout_shape=FanoutShape(page_size=500, shards=1, parallelization=1))
    reset()
