"""The $connect Lambda REQUEST authorizer, with the project's real token authorizer code."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gateway_kit import AUTHORIZER_ARN, Running, resources, start_gateway, with_authorizer
from polling import until
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pipeline.infrastructure.connect_authorizer.handler import authorize, encode_token

SECRET = b"test-secret-of-at-least-32-bytes!"


@pytest.fixture
async def guarded() -> AsyncIterator[Running]:
    run = await start_gateway(res=with_authorizer(resources()))
    run.backend.authorizer = lambda event: authorize(event, SECRET)
    yield run
    await run.gateway.stop()


async def test_valid_token_connects_with_its_principal(guarded: Running) -> None:
    token = encode_token(SECRET, {"sub": "alice", "exp": int(time.time()) + 60})
    ws = await connect(f"{guarded.ws_url}?token={token}", open_timeout=5)
    await until(lambda: len(guarded.backend.of("PutItem")) == 1)
    item = guarded.backend.of("PutItem")[0].request["Item"]
    assert item["principal"] == {"S": "alice"}
    arn, event = guarded.backend.invocations[0]
    assert arn == AUTHORIZER_ARN
    assert event["type"] == "REQUEST"
    assert event["queryStringParameters"] == {"token": token}
    assert event["methodArn"].endswith("/dev/$connect")
    assert event["requestContext"]["connectionId"] == item["connectionId"]["S"]
    await ws.send('{"action":"echo"}')
    await until(lambda: len(guarded.backend.of("PutRecord")) == 1)
    assert guarded.backend.of("PutRecord")[0].envelope["principal"] == "alice"
    await ws.close()


@pytest.mark.parametrize(("answer", "status"), [
    ("deny", 403), ("unauthorized", 401), ("crash", 500), ("garbage", 500),
    ("unauthorized_in_words", 500)])
async def test_refusals_never_write_the_roster(guarded: Running, answer: str,
                                               status: int) -> None:
    def authorizer(event: dict[str, Any]) -> Any:
        if answer == "unauthorized":
            raise RuntimeError("Unauthorized")
        if answer == "crash":
            raise RuntimeError("boom")
        if answer == "unauthorized_in_words":  # only the exact message is API Gateway's 401
            raise RuntimeError("Unauthorized access to the roster")
        if answer == "garbage":
            return {"principalId": "x"}
        return authorize(event, SECRET)  # no token: Deny

    guarded.backend.authorizer = authorizer
    with pytest.raises(InvalidStatus) as refused:
        await connect(guarded.ws_url, open_timeout=5)
    assert refused.value.response.status_code == status
    assert guarded.backend.calls == []


def _with_identity_source(sources: list[str]) -> dict[str, dict[str, Any]]:
    res = with_authorizer(resources())
    res["Authorizer"]["Properties"]["IdentitySource"] = sources
    return res


@pytest.mark.parametrize("query", ["", "?token=", "?other=1"])
async def test_a_connect_without_the_identity_source_is_401_and_never_invokes(
        query: str) -> None:
    # "Otherwise, it returns a 401 Unauthorized response without calling the Lambda function"
    # (CreateAuthorizer identitySource, apis-apiid-authorizers.html).
    run = await start_gateway(res=_with_identity_source(["route.request.querystring.token"]))
    run.backend.authorizer = lambda event: authorize(event, SECRET)
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{run.ws_url}{query}", open_timeout=5)
        assert refused.value.response.status_code == 401
        assert run.backend.invocations == []
        assert run.backend.calls == []  # no roster write
    finally:
        await run.gateway.stop()


async def test_with_the_identity_source_present_the_authorizer_decides() -> None:
    run = await start_gateway(res=_with_identity_source(["route.request.querystring.token"]))
    run.backend.authorizer = lambda event: authorize(event, SECRET)
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{run.ws_url}?token=not-a-jwt", open_timeout=5)
        assert refused.value.response.status_code == 403  # invoked: it denies a bad token
        assert len(run.backend.invocations) == 1
        token = encode_token(SECRET, {"sub": "bob", "exp": int(time.time()) + 60})
        ws = await connect(f"{run.ws_url}?token={token}", open_timeout=5)
        await ws.close()
        assert len(run.backend.invocations) == 2
    finally:
        await run.gateway.stop()
