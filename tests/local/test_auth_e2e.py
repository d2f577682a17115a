"""`$connect` token authorization as deployed, end to end: the prod stack on the twin.

The token authorizer (pipeline/infrastructure/connect_authorizer) runs in its own worker, reads
its secret from the twin's Secrets Manager, and API Gateway's answer to its policy is honoured:
no token -> HTTP 401 from API Gateway itself (the identity source ``?token=`` is missing, the
function is not invoked); a bad one -> 403 from the function's Deny; a valid one -> connected, and its principal is
in the roster item and in every stream record the consumers decode (``Envelope.principal``).
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from pipeline.aws.limits import REGION
from pipeline.infrastructure.connect_authorizer.handler import encode_token
from pipeline.local.harness import TwinProcess, start_twin, stop_twin

pytestmark = [pytest.mark.twin, pytest.mark.synth]
TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def prod_twin(prod_assembly: Path) -> Iterator[TwinProcess]:
    running = start_twin(prod_assembly, stage="prod")
    yield running
    stop_twin(running)


def _aws(twin: TwinProcess, service: str) -> Any:
    return boto3.client(service, endpoint_url=twin.aws, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def _secret(twin: TwinProcess) -> bytes:
    client = _aws(twin, "secretsmanager")
    (entry,) = client.list_secrets()["SecretList"]
    return str(client.get_secret_value(SecretId=entry["ARN"])["SecretString"]).encode()


def _token(twin: TwinProcess, sub: str, ttl_s: int = 300, secret: bytes | None = None) -> str:
    now = int(time.time())
    return encode_token(secret or _secret(twin), {"sub": sub, "iat": now, "exp": now + ttl_s})


async def _refused(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, open_timeout=TIMEOUT_S, **kwargs):
            pass
    return refused.value.response.status_code


async def test_connect_without_a_valid_token_is_refused_with_403(prod_twin: TwinProcess) -> None:
    assert await _refused(prod_twin.ws) == 401  # no ?token=: refused before the authorizer
    assert await _refused(prod_twin.ws + "?token=") == 401  # "not null, and non-empty"
    assert await _refused(prod_twin.ws + "?token=not-a-jwt") == 403
    forged = _token(prod_twin, "mallory", secret=b"not the stack's secret, 32+ bytes long")
    assert await _refused(prod_twin.ws + f"?token={forged}") == 403
    expired = _token(prod_twin, "alice", ttl_s=-60)
    assert await _refused(prod_twin.ws + f"?token={expired}") == 403


async def test_a_valid_token_connects_and_its_principal_reaches_the_consumers(
    prod_twin: TwinProcess,
) -> None:
    kinesis = _aws(prod_twin, "kinesis")
    (stream,) = kinesis.list_streams()["StreamNames"]
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    iterators = {s["ShardId"]: kinesis.get_shard_iterator(
        StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="LATEST")["ShardIterator"]
        for s in shards}
    marker = f"auth-{time.monotonic_ns()}"
    url = prod_twin.ws + f"?token={_token(prod_twin, 'alice')}"
    roster = _aws(prod_twin, "dynamodb")
    (table,) = roster.list_tables()["TableNames"]
    async with websockets.connect(url, open_timeout=TIMEOUT_S) as ws:
        await ws.send(json.dumps({"action": "echo", "data": marker}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        metas = roster.scan(TableName=table, FilterExpression="sk = :m",
                            ExpressionAttributeValues={":m": {"S": "META"}})["Items"]
    assert reply["action"] == "echo" and reply["data"] == marker
    assert [m["principal"] for m in metas] == [{"S": "alice"}]  # written by the $connect VTL
    envelopes = []
    for iterator in iterators.values():
        for record in kinesis.get_records(ShardIterator=iterator)["Records"]:
            data = record["Data"]
            envelopes.append(json.loads(data if isinstance(data, bytes) else base64.b64decode(data)))
    (envelope,) = [e for e in envelopes if marker in e["body"]]
    assert envelope["principal"] == "alice"
    assert metas[0]["connectionId"] == {"S": envelope["connectionId"]}
