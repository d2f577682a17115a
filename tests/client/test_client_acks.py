"""``send_acked`` against a scripted WebSocket server on 127.0.0.1: the retry rule of docs/acks.md."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pipeline.client import ClientOptions, Nacked, connect

FAST = ClientOptions(ack_timeout_s=0.3, ack_backoff_base_s=0.01, ack_backoff_cap_s=0.02)


class Script:
    """Answers each "send" frame with the next scripted reply (None: no answer)."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any] | None] = []
        self.received: list[dict[str, Any]] = []

    async def handler(self, ws: ServerConnection) -> None:
        async for data in ws:
            frame = json.loads(data)
            self.received.append(frame)
            if frame.get("action") == "ping":
                await ws.send('{"action":"pong"}')
            elif frame.get("action") == "send" and self.replies:
                reply = self.replies.pop(0)
                if reply is not None:
                    await ws.send(json.dumps(reply))


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Script]]:
    script = Script()
    async with serve(script.handler, "127.0.0.1", 0) as running:
        port = running.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/dev", script


ACK = {"action": "ack", "route": "send", "shardId": "shardId-000000000000"}


def nack(error: str, retryable: bool) -> dict[str, Any]:
    return {"action": "nack", "route": "send", "error": error, "retryable": retryable}


async def test_an_ack_resolves(server: tuple[str, Script]) -> None:
    url, script = server
    script.replies = [ACK]
    client = connect(url, options=FAST)
    assert (await client.send_acked({"action": "send", "room": "r", "text": "t", "id": 1}))[
        "shardId"] == "shardId-000000000000"
    await client.close()


async def test_retryable_nacks_and_timeouts_resend_the_same_frame(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.replies = [nack("ProvisionedThroughputExceededException", True), None, ACK]
    client = connect(url, options=FAST)
    frame = {"action": "send", "room": "r", "text": "t", "id": "a-1"}
    assert (await client.send_acked(frame))["action"] == "ack"
    sends = [f for f in script.received if f["action"] == "send"]
    assert sends == [frame, frame, frame]  # the same id every time
    await client.close()


async def test_a_non_retryable_nack_rejects_without_a_resend(server: tuple[str, Script]) -> None:
    url, script = server
    script.replies = [nack("AccessDeniedException", False), ACK]
    client = connect(url, options=FAST)
    with pytest.raises(Nacked) as refused:
        await client.send_acked({"action": "send", "room": "r", "text": "t", "id": 2})
    assert (refused.value.error, refused.value.retryable) == ("AccessDeniedException", False)
    assert len([f for f in script.received if f["action"] == "send"]) == 1
    await client.close()


async def test_attempts_are_bounded(server: tuple[str, Script]) -> None:
    url, script = server
    script.replies = [None] * 10
    client = connect(url, options=FAST)
    with pytest.raises(Nacked) as gave_up:
        await client.send_acked({"action": "send", "room": "r", "text": "t", "id": 3})
    assert gave_up.value.retryable
    assert len([f for f in script.received if f["action"] == "send"]) == FAST.ack_attempts
    await client.close()
