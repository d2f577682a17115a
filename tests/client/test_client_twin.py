"""``pipeline.client`` against the twin: chat with acks, a dropped connection re-joins, pings
hold a connection past the idle timeout, and the connection is replaced before its maximum
life without a state change (the new one open and joined before the old one closes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.aws.limits import REGION
from pipeline.client import Client, ClientOptions, connect
from pipeline.local.harness import Twin, start_twin, stop_twin

pytestmark = [pytest.mark.twin, pytest.mark.synth]
IDLE_S = 2.0
LIFE_S = 4.0
TIMEOUT_S = 10.0
QUICK = ClientOptions(ping_interval_s=0.5, backoff_base_s=0.05, backoff_cap_s=0.5)


@pytest.fixture(scope="module")
def twin(cloud_assembly: Path) -> Iterator[Twin]:
    running = start_twin(cloud_assembly, "--idle-timeout", str(IDLE_S),
                         "--max-connection-life", str(LIFE_S))
    yield running
    stop_twin(running)


def _states(client: Client) -> list[str]:
    seen: list[str] = []
    client.on("state", lambda change: seen.append(change[0]))
    return seen


async def _message(client: Client, text: str) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            frame = await client.recv()
            if isinstance(frame, dict) and frame.get("text") == text:
                return frame


async def _joined(client: Client, room: str) -> None:
    await client.send({"action": "join", "room": room})
    async with asyncio.timeout(TIMEOUT_S):
        while (await client.recv()) != {"action": "joined", "room": room}:
            pass


async def test_chat_with_acks_and_a_drop_that_reconnects_and_rejoins(twin: Twin) -> None:
    alice, bob = connect(twin.ws, options=QUICK), connect(twin.ws, options=QUICK)
    alice_states = _states(alice)
    for client in (alice, bob):
        await client.wait_state("open")
        await _joined(client, "py-room")
    ack = await alice.send_acked({"action": "send", "room": "py-room", "text": "one", "id": 1})
    assert ack["action"] == "ack" and ack["shardId"].startswith("shardId-")
    alice_id = (await _message(bob, "one"))["from"]
    api = boto3.client("apigatewaymanagementapi",
                       endpoint_url=twin.connections.removesuffix("/@connections"),
                       region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    await asyncio.to_thread(api.delete_connection, ConnectionId=alice_id)
    await alice.wait_state("reconnecting", TIMEOUT_S)
    await alice.wait_state("open", TIMEOUT_S)
    async with asyncio.timeout(TIMEOUT_S):
        while (await alice.recv()) != {"action": "joined", "room": "py-room"}:
            pass  # the re-join's answer
    await bob.send_acked({"action": "send", "room": "py-room", "text": "two", "id": 2})
    await _message(alice, "two")
    assert alice_states == ["open", "reconnecting", "open"] and alice.attempts == 2
    for client in (alice, bob):
        await client.close()
    assert alice.state == "closed" and alice.reason == "client"


async def test_pings_and_replacement_outlive_idle_timeout_and_connection_life(
    twin: Twin,
) -> None:
    options = ClientOptions(ping_interval_s=0.5, max_connection_s=LIFE_S / 2,
                            backoff_base_s=0.05, backoff_cap_s=0.5)
    kept, sender = connect(twin.ws, options=options), connect(twin.ws, options=QUICK)
    states = _states(kept)
    await kept.wait_state("open")
    await sender.wait_state("open")
    await _joined(kept, "rotating")
    await _joined(sender, "rotating")
    for n in range(6):  # ~6 s: three idle timeouts, past the maximum life, several replacements
        await asyncio.sleep(1.0)  # the span under test, not a wait for work
        await sender.send_acked({"action": "send", "room": "rotating", "text": f"m{n}",
                                 "id": n + 10})
        await _message(kept, f"m{n}")
    assert states == ["open"]  # never reconnecting: replaced before each limit
    assert kept.attempts >= 3  # ... by new connections
    for client in (kept, sender):
        await client.close()


async def test_whoami_gives_the_connection_id_the_consumers_see(twin: Twin) -> None:
    client = connect(twin.ws, options=QUICK)
    try:
        me = await client.whoami()
        assert client.connection_id == me
        await client.send({"action": "join", "room": "whoami-room"})
        assert (await client.recv(10))["action"] == "joined"
        await client.send({"action": "who", "room": "whoami-room"})
        who = await client.recv(10)
        assert me in str(who), who
    finally:
        await client.close()
