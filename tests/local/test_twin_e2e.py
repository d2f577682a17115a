"""End to end through the twin: real WebSocket clients, boto3 and the CLI against `twin`.

Negative checks ("C receives nothing") use ordering, not sleeps: once a recipient has the
message, the consumer has posted every copy; a later reply to C proves nothing came before it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets
from botocore.exceptions import ClientError

from pipeline.aws.limits import REGION
from pipeline.local.harness import PROJECT_ROOT, TwinProcess, start_twin, stop_twin

pytestmark = [pytest.mark.twin, pytest.mark.synth]
TIMEOUT_S = 15.0


def _client(twin: TwinProcess, service: str, **kwargs: Any) -> Any:
    return boto3.client(service, endpoint_url=kwargs.pop("endpoint_url", twin.aws),
                        region_name=REGION, aws_access_key_id="x",
                        aws_secret_access_key="x", **kwargs)


@asynccontextmanager
async def _connect(twin: TwinProcess) -> AsyncIterator[Any]:
    async with websockets.connect(twin.ws, open_timeout=TIMEOUT_S) as ws:
        yield ws


async def _recv(ws: Any, *, presence: bool = False) -> Any:
    """The next frame; presence events (chat) are skipped unless asked for."""
    for _ in range(100):  # bounded
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        if presence or frame.get("action") != "presence":
            return frame
    raise AssertionError("only presence events")


async def _send(ws: Any, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))
    if frame.get("action") == "send":  # an acked route: the gateway answers first (docs/acks.md)
        assert (await _recv(ws))["action"] == "ack"


def _room() -> str:
    return "r-" + uuid.uuid4().hex[:10]


async def _join(ws: Any, room: str) -> None:
    await _send(ws, {"action": "join", "room": room})
    assert await _recv(ws) == {"action": "joined", "room": room}


async def _ids(a: Any, b: Any) -> tuple[str, str]:
    """The connection ids of a and b (learned from chat messages' ``from``)."""
    room = _room()
    await _join(a, room)
    await _join(b, room)
    await _send(a, {"action": "send", "room": room, "text": "id?"})
    a_id = (await _recv(b))["from"]
    await _send(b, {"action": "send", "room": room, "text": "id?"})
    b_id = (await _recv(a))["from"]
    return a_id, b_id


async def test_echo_round_trip(twin: TwinProcess) -> None:
    async with _connect(twin) as ws:
        payload = {"nested": [1, "two", None], "quote": "\"'</script>"}
        await _send(ws, {"action": "echo", "data": payload})
        reply = await _recv(ws)
        assert reply["action"] == "echo" and reply["data"] == payload
        timing = reply["timing"]
        now_ms = time.time() * 1000
        for key in ("gatewayMs", "streamMs", "consumerMs", "replyMs"):
            assert abs(now_ms - timing[key]) < 60_000, (key, timing)
        assert timing["gatewayMs"] <= timing["replyMs"]


async def test_chat_three_clients_two_rooms(twin: TwinProcess) -> None:
    room1, room2 = _room(), _room()
    async with _connect(twin) as a, _connect(twin) as b, _connect(twin) as c:
        await _join(a, room1)
        await _join(b, room1)
        await _join(c, room2)
        await _send(a, {"action": "send", "room": room1, "text": "hello room1"})
        got = await _recv(b)
        assert got["action"] == "message" and got["room"] == room1
        assert got["text"] == "hello room1" and got["from"]
        # a (the sender) and c (another room) got nothing before their next reply
        await _join(a, room1)
        await _join(c, room2)


async def test_who_and_presence_through_the_twin(twin: TwinProcess) -> None:
    room = _room()
    async with _connect(twin) as a, _connect(twin) as b:
        await _send(a, {"action": "whoami"})
        a_id = (await _recv(a))["connectionId"]
        await _join(a, room)
        await _join(b, room)
        others: list[str] = []
        for _ in range(10):  # coalesced frames: a's own join may come first, alone
            joined = await _recv(a, presence=True)
            assert joined["action"] == "presence" and joined["room"] == room
            others = [m["connectionId"] for m in joined["joined"] if m["connectionId"] != a_id]
            if others:
                break
        (b_id,) = others
        await _send(a, {"action": "who", "room": room})
        who = await _recv(a)
        assert who["action"] == "who" and b_id in {m["connectionId"] for m in who["members"]}
        assert len(who["members"]) == 2
    async with _connect(twin) as c:
        await _join(c, room)
        members: list[Any] = []
        for _ in range(50):  # a's and b's $disconnect run on their own shards: ask until seen
            await _send(c, {"action": "who", "room": room})
            members = (await _recv(c))["members"]
            if len(members) == 1:
                break
        assert len(members) == 1  # the disconnects removed a and b from the room


async def test_unknown_action_and_non_json_get_error_frames(twin: TwinProcess) -> None:
    async with _connect(twin) as ws:
        await _send(ws, {"action": "teleport"})
        assert (await _recv(ws))["error"] == "unknown_action"
        await ws.send("this is not json {")
        reply = await _recv(ws)
        assert reply["action"] == "error" and reply["error"] == "invalid_frame"


async def test_publish_reaches_a_room(twin: TwinProcess) -> None:
    room = _room()
    async with _connect(twin) as a, _connect(twin) as b:
        await _join(a, room)
        await _join(b, room)
        cmd = [sys.executable, "-m", "pipeline", "publish", "--room", room,
               "--endpoint-url", twin.aws, '{"news": 1}']
        done = await asyncio.to_thread(subprocess.run, cmd, cwd=PROJECT_ROOT, capture_output=True,
                                       text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        for ws in (a, b):
            assert await _recv(ws) == {"action": "broadcast", "room": room, "data": {"news": 1}}


async def test_gone_connection_is_pruned_from_the_roster(twin: TwinProcess) -> None:
    ddb = _client(twin, "dynamodb")
    table = ddb.list_tables()["TableNames"][0]
    ghost = "G" + uuid.uuid4().hex[:14] + "="
    room = _room()
    attrs = {"room": {"S": room}, "connectionId": {"S": ghost}, "joinedAt": {"N": "1"},
             "expiresAt": {"N": str(int(time.time()) + 3600)}}
    for pk, sk in ((f"CONN#{ghost}", "META"), (f"CONN#{ghost}", f"ROOM#{room}"),
                   (f"ROOM#{room}", f"CONN#{ghost}")):
        ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, **attrs})
    async with _connect(twin) as a, _connect(twin) as b:
        await _join(a, room)
        await _join(b, room)
        await _send(a, {"action": "send", "room": room, "text": "anyone?"})
        assert (await _recv(b))["text"] == "anyone?"

    def ghost_items() -> list[Any]:
        return [*ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                           ExpressionAttributeValues={":p": {"S": f"CONN#{ghost}"}})["Items"],
                *ddb.query(TableName=table, KeyConditionExpression="pk = :p AND sk = :s",
                           ExpressionAttributeValues={":p": {"S": f"ROOM#{room}"},
                                                      ":s": {"S": f"CONN#{ghost}"}})["Items"]]

    deadline = time.monotonic() + TIMEOUT_S
    while ghost_items() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling the roster: the condition under test
    assert ghost_items() == []


async def test_connections_api_with_boto3(twin: TwinProcess) -> None:
    api = _client(twin, "apigatewaymanagementapi",
                  endpoint_url=twin.connections.removesuffix("/@connections"))
    async with _connect(twin) as a, _connect(twin) as b:
        a_id, _ = await _ids(a, b)
        await asyncio.to_thread(api.post_to_connection, ConnectionId=a_id, Data=b'{"x": 1}')
        assert await _recv(a) == {"x": 1}
        info = await asyncio.to_thread(api.get_connection, ConnectionId=a_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        await asyncio.to_thread(api.delete_connection, ConnectionId=a_id)
        await asyncio.wait_for(a.wait_closed(), TIMEOUT_S)
    with pytest.raises(ClientError) as err:
        await asyncio.to_thread(api.post_to_connection, ConnectionId=a_id, Data=b"late")
    assert err.value.response["Error"]["Code"] == "GoneException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


async def test_put_records_from_outside_reach_the_consumers(twin: TwinProcess) -> None:
    kinesis = _client(twin, "kinesis")
    stream = kinesis.list_streams()["StreamNames"][0]
    async with _connect(twin) as a, _connect(twin) as b:
        a_id, _ = await _ids(a, b)
        envelope = {
            "v": 1, "routeKey": "echo", "eventType": "MESSAGE", "connectionId": a_id,
            "requestId": str(uuid.uuid4()), "messageId": "m-1",
            "requestTimeEpoch": int(time.time() * 1000), "stage": "dev",
            "domainName": "127.0.0.1", "sourceIp": "127.0.0.1", "principal": "",
            "body": json.dumps({"action": "echo", "data": "from outside"}),
        }
        out = await asyncio.to_thread(
            kinesis.put_records, StreamName=stream,
            Records=[{"Data": json.dumps(envelope).encode(), "PartitionKey": a_id}])
        assert out["FailedRecordCount"] == 0
        reply = await _recv(a)
        assert reply["action"] == "echo" and reply["data"] == "from outside"


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list worker processes")
def test_sigterm_stops_cleanly_without_orphans(cloud_assembly: Path) -> None:
    second = start_twin(cloud_assembly)
    workers = _children(second.process.pid)
    assert len(workers) >= 4  # one warm worker per consumer function
    assert stop_twin(second) == 0
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.05)  # polling /proc: the condition under test, with a deadline
    assert alive == []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited

