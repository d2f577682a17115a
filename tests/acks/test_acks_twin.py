"""Acks, nacks and idempotent consumers end to end through the session twin (docs/acks.md).

Negative checks use ordering, not sleeps: a later frame's answer proves nothing came before it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import boto3
import pytest
import websockets

from pipeline.aws.limits import REGION
from pipeline.local.harness import TwinProcess

pytestmark = [pytest.mark.twin, pytest.mark.synth]
TIMEOUT_S = 15.0


def _client(twin: TwinProcess, service: str) -> Any:
    return boto3.client(service, endpoint_url=twin.aws, region_name=REGION,
                        aws_access_key_id="x", aws_secret_access_key="x")


@asynccontextmanager
async def _connect(url: str) -> AsyncIterator[Any]:
    async with websockets.connect(url, open_timeout=TIMEOUT_S) as ws:
        yield ws


async def _recv(ws: Any) -> Any:
    """The next frame, skipping chat's presence events (not what these tests are about)."""
    for _ in range(100):  # bounded
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        if frame.get("action") != "presence":
            return frame
    raise AssertionError("only presence events")


async def _send(ws: Any, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


def _room() -> str:
    return "ack-" + uuid.uuid4().hex[:10]


def _roster_items(twin: TwinProcess, pk: str) -> list[dict[str, Any]]:
    ddb = _client(twin, "dynamodb")
    table = next(t for t in ddb.list_tables()["TableNames"] if "Roster" in t)
    items: list[dict[str, Any]] = ddb.query(
        TableName=table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}}, ConsistentRead=True)["Items"]
    return items


async def _join(ws: Any, room: str) -> None:
    await _send(ws, {"action": "join", "room": room})
    assert await _recv(ws) == {"action": "joined", "room": room}


async def test_ack_carries_the_real_shard_and_sequence_number(twin: TwinProcess) -> None:
    room = _room()
    async with _connect(twin.ws) as a, _connect(twin.ws) as b:
        await _join(a, room)
        await _join(b, room)
        await _send(a, {"action": "send", "room": room, "text": "hello", "id": "m-1"})
        ack = await _recv(a)
        assert ack["action"] == "ack" and ack["route"] == "send" and ack["requestId"]
        message = await _recv(b)
        assert message["text"] == "hello"
    kinesis = _client(twin, "kinesis")
    stream = kinesis.list_streams()["StreamNames"][0]
    shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]
    assert ack["shardId"] in shards
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=ack["shardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=ack["sequenceNumber"])["ShardIterator"]
    record = kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"][0]
    assert record["SequenceNumber"] == ack["sequenceNumber"]
    assert len(ack["sequenceNumber"]) == 56  # AWS-shaped (tests/local/test_sequence_numbers.py)
    envelope = json.loads(record["Data"])
    assert envelope["requestId"] == ack["requestId"] and envelope["routeKey"] == "send"
    assert json.loads(envelope["body"])["id"] == "m-1"  # the id travels in the envelope


async def test_chat_send_resent_three_times_is_acked_three_times_delivered_once(
        twin: TwinProcess) -> None:
    room = _room()
    async with _connect(twin.ws) as a, _connect(twin.ws) as b:
        await _join(a, room)
        await _join(b, room)
        frame = {"action": "send", "room": room, "text": "once", "id": "retry-1"}
        acks = []
        for _ in range(3):  # stop-and-wait, as a client retrying after a lost ack does
            await _send(a, frame)
            acks.append(await _recv(a))
        assert [x["action"] for x in acks] == ["ack"] * 3
        assert len({x["sequenceNumber"] for x in acks}) == 3  # stored three times
        assert (await _recv(b))["text"] == "once"
        await _send(a, {"action": "send", "room": room, "text": "marker"})  # no id
        assert (await _recv(a))["action"] == "ack"
        # b's next message is the marker: the two duplicates were never delivered.
        assert (await _recv(b))["text"] == "marker"


async def _connection_id(ws: Any, helper: Any) -> str:
    """ws's connection id, learned from a chat message it sends to helper."""
    room = _room()
    await _join(ws, room)
    await _join(helper, room)
    await _send(ws, {"action": "send", "room": room, "text": "who"})
    assert (await _recv(ws))["action"] == "ack"
    return str((await _recv(helper))["from"])


async def test_echo_resent_three_times_is_echoed_three_times_but_executed_once(
        twin: TwinProcess) -> None:
    async with _connect(twin.ws) as ws, _connect(twin.ws) as helper:
        cid = await _connection_id(ws, helper)
        frame = {"action": "echo", "data": {"n": 1}, "id": 42}
        replies = []
        for _ in range(3):
            await _send(ws, frame)
            replies.append(await _recv(ws))
        assert [r["data"] for r in replies] == [{"n": 1}] * 3
        # One execution: the duplicates get the stored reply, identical to the millisecond.
        assert replies[1] == replies[0] and replies[2] == replies[0]
        items = _roster_items(twin, f"IDEM#{cid}")
        assert len(items) == 1 and items[0]["status"]["S"] == "COMPLETED"

        # The same id with a different frame is refused, not silently answered with old data.
        await _send(ws, {"action": "echo", "data": {"n": 2}, "id": 42})
        refused = await _recv(ws)
        assert refused["action"] == "error" and refused["error"] == "invalid_request"

        # Frames without an id: no ack, processed every time, nothing stored.
        await _send(ws, {"action": "echo", "data": "plain"})
        first = await _recv(ws)
        await _send(ws, {"action": "echo", "data": "plain"})
        second = await _recv(ws)
        assert first["data"] == second["data"] == "plain"
        assert second["timing"]["consumerMs"] >= first["timing"]["consumerMs"]
        assert len(_roster_items(twin, f"IDEM#{cid}")) == 1
