"""The account quotas the twin enforces, answered as AWS does (status and error code)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from gateway_kit import RecordingBackend, Running, resources
from stacks import stack_of
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pipeline.aws.limits import REGION
from pipeline.local.gateway import Gateway, GatewayLimits, build_api_model
from pipeline.local.gateway.quotas import GatewayQuotas, RateQuota

ID = "AAAAAAAAAAAAAAA="  # well formed, never connected: 410 once past the quota


async def start(quotas: GatewayQuotas) -> Running:
    backend = RecordingBackend()
    gateway = Gateway(build_api_model(stack_of(resources()), "dev"), backend, stage="dev", port=0,
                      limits=GatewayLimits(), quotas=quotas)
    await gateway.start()
    return Running(gateway, backend)


@pytest.fixture
async def throttled() -> AsyncIterator[Running]:
    run = await start(GatewayQuotas(connections_rps=4, new_connections_per_second=2))
    yield run
    await run.gateway.stop()


def test_the_quota_refills_at_its_rate() -> None:
    now = [10.0]
    quota = RateQuota(10, 2, clock=lambda: now[0])
    assert [quota.allow() for _ in range(3)] == [True, True, False]
    now[0] += 0.1
    assert quota.allow() and not quota.allow()
    assert quota.refused == 2


async def test_connections_calls_beyond_the_rate_get_429_limit_exceeded(
    throttled: Running,
) -> None:
    url = f"{throttled.connections_url}/@connections/{ID}"
    async with aiohttp.ClientSession() as http:
        answers = []
        for _ in range(6):  # burst 2 (half of 4/s); the calls take well under 1 s
            async with http.post(url, data=b"{}") as r:
                answers.append((r.status, r.headers.get("x-amzn-ErrorType")))
    assert answers[:2] == [(410, "GoneException")] * 2
    assert (429, "LimitExceededException") in answers[2:]


async def test_boto3_sees_the_throttle_as_limit_exceeded() -> None:
    run = await start(GatewayQuotas(connections_rps=1))  # burst 1: the next call within 1 s
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url=run.connections_url,
        region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t",
        config=Config(retries={"max_attempts": 1}))

    def post_all() -> list[str]:
        codes = []
        for _ in range(3):
            try:
                client.post_to_connection(ConnectionId=ID, Data=b"{}")
            except ClientError as exc:
                codes.append(str(exc.response["Error"]["Code"]))
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] in (410, 429)
        return codes

    try:
        codes = await asyncio.to_thread(post_all)
    finally:
        await run.gateway.stop()
    assert codes[0] == "GoneException" and "LimitExceededException" in codes[1:]


async def test_connects_beyond_the_rate_are_refused_with_429(throttled: Running) -> None:
    opened = [await connect(throttled.ws_url, open_timeout=5) for _ in range(2)]
    with pytest.raises(InvalidStatus) as refused:
        await connect(throttled.ws_url, open_timeout=5)
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["x-amzn-ErrorType"] == "LimitExceededException"
    assert len(throttled.backend.of("PutItem")) == 2  # a refused connect never runs $connect
    for ws in opened:
        await ws.close()


async def test_latency_is_added_to_every_connections_call() -> None:
    run = await start(GatewayQuotas(connections_latency_ms=60))
    try:
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.post(f"{run.connections_url}/@connections/{ID}", data=b"{}") as r:
                assert r.status == 410
            assert time.monotonic() - started >= 0.06
    finally:
        await run.gateway.stop()
