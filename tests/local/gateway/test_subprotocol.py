"""``Sec-WebSocket-Protocol`` as API Gateway treats it: never echoed unless ``$connect`` sets it.

AWS documents the echo only from a Lambda ``$connect`` integration that returns the header
(https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-connect-route-subprotocol.html);
this project's ``$connect`` is a DynamoDB PutItem, so a client offering a subprotocol gets none.
A browser then fails the connection (WHATWG WebSocket standard, "establish a WebSocket
connection": a response without ``Sec-WebSocket-Protocol`` to a request that offered protocols
fails it), which is why the token authorizer reads ``?token=`` only.
"""

from __future__ import annotations

import time

import pytest
from gateway_kit import Running, resources, start_gateway, with_authorizer
from polling import until
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from pipeline.infrastructure.connect_authorizer.handler import authorize, encode_token

SECRET = b"test-secret-of-at-least-32-bytes!"


class BrowserRefused(Exception):
    """What a browser's WebSocket does with the handshake answer (it fires ``error``)."""


def as_a_browser(offered: list[str], answer: Headers) -> str:
    """The subprotocol a browser would settle on, or :class:`BrowserRefused`.

    WHATWG WebSocket: if protocols were offered, the answer must name exactly one of them;
    RFC 6455 section 4.1 lets a non-browser client go on without one.
    """
    chosen = answer.get("Sec-WebSocket-Protocol")
    if offered and chosen is None:
        raise BrowserRefused("Sent non-empty 'Sec-WebSocket-Protocol' header but no response "
                             "was received")
    if chosen is not None and chosen not in offered:
        raise BrowserRefused(f"unexpected subprotocol {chosen!r}")
    return chosen or ""


async def test_an_offered_subprotocol_is_not_echoed(running: Running) -> None:
    offered = ["pipeline.v1", "chat"]
    async with connect(running.ws_url, subprotocols=[Subprotocol(p) for p in offered],
                       open_timeout=5) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        assert ws.subprotocol is None  # a non-browser client (RFC 6455) goes on without one
        with pytest.raises(BrowserRefused):
            as_a_browser(offered, ws.response.headers)  # ... a browser would not
        await ws.send('{"action":"echo"}')
        await until(lambda: len(running.backend.of("PutRecord", "echo")) == 1)
    assert as_a_browser([], Headers()) == ""  # offering nothing, a browser needs nothing


async def test_a_token_offered_as_a_subprotocol_is_refused_and_the_query_token_works() -> None:
    run = await start_gateway(res=with_authorizer(resources()))
    run.backend.authorizer = lambda event: authorize(event, SECRET)
    try:
        token = encode_token(SECRET, {"sub": "alice", "exp": int(time.time()) + 60})
        with pytest.raises(InvalidStatus) as refused:
            await connect(run.ws_url, subprotocols=[Subprotocol("pipeline.v1"), Subprotocol(token)],
                          open_timeout=5)
        assert refused.value.response.status_code == 403
        assert run.backend.of("PutItem") == []
        (_, event), = run.backend.invocations  # the header reached the authorizer, unused
        assert token in event["headers"]["Sec-WebSocket-Protocol"]
        async with connect(f"{run.ws_url}?token={token}", open_timeout=5) as ws:
            assert ws.subprotocol is None
        await until(lambda: len(run.backend.of("PutItem")) == 1)
        assert run.backend.of("PutItem")[0].request["Item"]["principal"] == {"S": "alice"}
    finally:
        await run.gateway.stop()
