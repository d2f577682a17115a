"""The gateway over real WebSocket connections and real boto3 @connections calls."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config
from gateway_kit import Running, resources, start_gateway
from polling import until
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipeline.aws.limits import REGION
from pipeline.local.gateway import GatewayLimits, GatewayRules


def management(url: str) -> Any:
    return boto3.client(
        "apigatewaymanagementapi", endpoint_url=url, region_name=REGION,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}))


async def open_client(run: Running) -> tuple[ClientConnection, str]:
    """Connect and return the client with its connection id (from the $connect roster write)."""
    before = len(run.backend.of("PutItem"))
    ws = await connect(run.ws_url, open_timeout=5)
    await until(lambda: len(run.backend.of("PutItem")) > before)
    item = run.backend.of("PutItem")[-1].request["Item"]
    return ws, item["connectionId"]["S"]


async def closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code is not None
    return ws.close_code


def disconnects(run: Running, cid: str) -> list[dict[str, Any]]:
    return [c.envelope for c in run.backend.of("PutRecord", "$disconnect")
            if c.envelope["connectionId"] == cid]


async def test_connect_writes_the_roster_then_frames_route_to_the_stream(running: Running) -> None:
    ws, cid = await open_client(running)
    put_item = running.backend.of("PutItem")[0]
    assert put_item.service == "dynamodb"
    assert put_item.request["Item"]["pk"] == {"S": f"CONN#{cid}"}
    await ws.send('{"action":"echo","data":1}')
    await ws.send("not json")
    await ws.send('{"action":"nope"}')
    await until(lambda: len(running.backend.of("PutRecord")) == 3)
    routes = [c.envelope["routeKey"] for c in running.backend.of("PutRecord")]
    assert routes == ["echo", "$default", "$default"]
    first = running.backend.of("PutRecord")[0]
    assert first.request["PartitionKey"] == cid
    assert first.envelope["body"] == '{"action":"echo","data":1}'
    assert first.envelope["connectionId"] == cid
    await ws.close()


async def test_connect_refused_when_the_roster_write_fails_by_default() -> None:
    """The default (``--connect-failure refuse``), as the stack declares $connect: only a
    ``/200/`` integration response, so a failed PutItem is an integration failure and the
    connection "will not be made" (WS-connect). Nothing is left: no connection, no $disconnect."""
    run = await start_gateway()
    try:
        run.backend.fail["PutItem"] = "ProvisionedThroughputExceededException"
        with pytest.raises(InvalidStatus) as refused:
            await connect(run.ws_url, open_timeout=5)
        assert refused.value.response.status_code == 500
        assert run.gateway.connection_ids == []
        assert run.backend.of("PutRecord", "$disconnect") == []
    finally:
        await run.gateway.stop()


async def test_a_failed_roster_write_still_connects_under_accept() -> None:
    """``--connect-failure accept``, the other reading (users report non-proxy HTTP $connect
    integrations that never refuse; docs/fidelity.md "Unverified on AWS"): the connection works,
    @connections reaches it, and its $disconnect still reaches the stream, so the consumers can
    clean up whatever it did meanwhile."""
    running = await start_gateway(rules=GatewayRules(connect_failure="accept"))
    try:
        await _connects_despite_a_failed_roster_write(running)
    finally:
        await running.gateway.stop()


async def _connects_despite_a_failed_roster_write(running: Running) -> None:
    running.backend.fail["PutItem"] = "ProvisionedThroughputExceededException"
    ws = await connect(running.ws_url, open_timeout=5)
    (cid,) = running.gateway.connection_ids
    assert running.backend.of("PutItem")[0].request["Item"]["connectionId"] == {"S": cid}
    await ws.send('{"action":"echo","data":1}')
    await until(lambda: len(running.backend.of("PutRecord", "echo")) == 1)
    await asyncio.to_thread(management(running.connections_url).post_to_connection,
                            ConnectionId=cid, Data=b"hi")
    assert await asyncio.wait_for(ws.recv(), 5) == "hi"
    await ws.close()
    await until(lambda: len(disconnects(running, cid)) == 1)


async def test_integration_failure_sends_the_aws_error_frame(running: Running) -> None:
    ws, cid = await open_client(running)
    running.backend.fail["PutRecord"] = "AccessDeniedException"
    await ws.send('{"action":"echo"}')
    frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert frame["message"] == "Internal server error"
    assert frame["connectionId"] == cid
    assert frame["requestId"] == running.backend.of("PutRecord")[-1].envelope["requestId"]
    await ws.close()


async def test_no_default_route_answers_forbidden() -> None:
    run = await start_gateway(res=resources(routes=("$connect", "$disconnect", "echo")))
    try:
        ws, cid = await open_client(run)
        await ws.send("hello")
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["message"] == "Forbidden"
        assert frame["connectionId"] == cid
        await ws.close()
    finally:
        await run.gateway.stop()


async def test_client_close_delivers_disconnect_once_with_its_code(running: Running) -> None:
    ws, cid = await open_client(running)
    await ws.close(code=4001, reason="bye")
    await until(lambda: len(disconnects(running, cid)) == 1)
    event = disconnects(running, cid)[0]
    assert event["disconnectStatusCode"] == 4001
    assert event["eventType"] == "DISCONNECT"
    await until(lambda: running.gateway.connection_ids == [])
    assert len(disconnects(running, cid)) == 1


async def test_network_drop_delivers_disconnect_1006(running: Running) -> None:
    ws, cid = await open_client(running)
    ws.transport.abort()
    await until(lambda: len(disconnects(running, cid)) == 1)
    assert disconnects(running, cid)[0]["disconnectStatusCode"] == 1006


@pytest.mark.parametrize("limits", [
    GatewayLimits(idle_timeout_s=0.3), GatewayLimits(max_connection_s=0.3)],
    ids=["idle", "lifetime"])
async def test_idle_and_lifetime_limits_close_1001(limits: GatewayLimits) -> None:
    run = await start_gateway(limits=limits)
    try:
        ws, cid = await open_client(run)
        started = time.monotonic()
        assert await closed_code(ws) == 1001
        assert time.monotonic() - started < 3
        await until(lambda: len(disconnects(run, cid)) == 1)
        assert disconnects(run, cid)[0]["disconnectStatusCode"] == 1001
    finally:
        await run.gateway.stop()


async def test_activity_resets_the_idle_timer() -> None:
    run = await start_gateway(limits=GatewayLimits(idle_timeout_s=0.4))
    try:
        ws, cid = await open_client(run)
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.8
        while loop.time() < end:  # a frame every 0.1 s for twice the idle timeout
            await ws.send("{}")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.1)
        assert cid in run.gateway.connection_ids
        await ws.close()
    finally:
        await run.gateway.stop()


async def test_server_stop_closes_clients_and_delivers_disconnect() -> None:
    run = await start_gateway()
    ws, cid = await open_client(run)
    await run.gateway.stop()
    assert await closed_code(ws) == 1001
    assert [e["disconnectStatusCode"] for e in disconnects(run, cid)] == [1001]


async def test_oversized_message_closes_1009(running: Running) -> None:
    ws, cid = await open_client(running)
    await ws.send("x" * (128 * 1024 + 1))
    assert await closed_code(ws) == 1009
    await until(lambda: len(disconnects(running, cid)) == 1)
    assert disconnects(running, cid)[0]["disconnectStatusCode"] == 1009


async def test_fragmented_message_up_to_128k_is_reassembled(running: Running) -> None:
    ws, _ = await open_client(running)
    text = "y" * (128 * 1024)
    await ws.send(text[i:i + 32 * 1024] for i in range(0, len(text), 32 * 1024))
    await until(lambda: len(running.backend.of("PutRecord", "$default")) == 1)
    assert running.backend.of("PutRecord", "$default")[0].envelope["body"] == text
    await ws.close()


async def test_binary_frame_closes_1003(running: Running) -> None:
    ws, cid = await open_client(running)
    await ws.send(b"\x00\x01")
    assert await closed_code(ws) == 1003
    await until(lambda: len(disconnects(running, cid)) == 1)


async def test_invalid_utf8_text_closes_1007(running: Running) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(running.ws_url)
        await ws.send_frame(b"\xff\xfe bad", aiohttp.WSMsgType.TEXT)
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1007
    await until(lambda: len(running.backend.of("PutRecord", "$disconnect")) == 1)
    assert running.backend.of("PutRecord", "$disconnect")[0].envelope[
        "disconnectStatusCode"] == 1007


async def test_connections_post_get_delete_through_boto3(running: Running) -> None:
    ws, cid = await open_client(running)
    api = management(running.connections_url)
    await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=b'{"hi":"\xc3\xa9"}')
    assert await asyncio.wait_for(ws.recv(), 5) == '{"hi":"é"}'
    await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=b"\xff\x00")
    assert await asyncio.wait_for(ws.recv(), 5) == b"\xff\x00"
    info = await asyncio.to_thread(api.get_connection, ConnectionId=cid)
    assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert "Python" in info["Identity"]["UserAgent"]
    assert info["LastActiveAt"] >= info["ConnectedAt"]
    await asyncio.to_thread(api.delete_connection, ConnectionId=cid)
    assert await closed_code(ws) == 1000
    await until(lambda: len(disconnects(running, cid)) == 1)
    assert disconnects(running, cid)[0]["disconnectStatusCode"] == 1000
    with pytest.raises(api.exceptions.GoneException):
        await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=b"x")


async def test_connections_errors_through_boto3(running: Running) -> None:
    ws, cid = await open_client(running)
    api = management(running.connections_url)
    with pytest.raises(api.exceptions.GoneException) as gone:
        await asyncio.to_thread(api.get_connection, ConnectionId="AAAAAAAAAAAAAAA=")
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    with pytest.raises(api.exceptions.PayloadTooLargeException) as too_large:
        await asyncio.to_thread(api.post_to_connection, ConnectionId=cid,
                                Data=b"z" * (128 * 1024 + 1))
    assert too_large.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(api.exceptions.ClientError) as bad:
        await asyncio.to_thread(api.post_to_connection, ConnectionId="not-an-id", Data=b"x")
    assert bad.value.response["Error"]["Code"] == "BadRequestException"
    assert bad.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    wrong_stage = management(f"http://127.0.0.1:{running.gateway.port}/prod")
    with pytest.raises(wrong_stage.exceptions.ForbiddenException):
        await asyncio.to_thread(wrong_stage.get_connection, ConnectionId=cid)
    await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=b"z" * (128 * 1024))
    assert len(await asyncio.wait_for(ws.recv(), 5)) == 128 * 1024
    await ws.close()


async def test_frame_round_trip_latency(running: Running) -> None:
    """Client frame -> route -> template -> backend -> error frame back: the hot path."""
    ws, _ = await open_client(running)
    running.backend.fail["PutRecord"] = "ProvisionedThroughputExceededException"
    samples = []
    for i in range(200):
        started = time.perf_counter()
        await ws.send(json.dumps({"action": "echo", "data": i}))
        await asyncio.wait_for(ws.recv(), 5)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50, p99 = samples[100], samples[198]
    print(f"gateway round trip: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    assert p50 < 5.0
    await ws.close()


async def test_plain_get_is_refused_before_connect_runs(running: Running) -> None:
    async with aiohttp.ClientSession() as session, session.get(running.connections_url) as resp:
        assert resp.status == 426
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{running.gateway.port}/other/path") as resp:
        assert resp.status == 403
        assert resp.headers["x-amzn-ErrorType"] == "ForbiddenException"
        assert await resp.json() == {"message": "Forbidden"}
    assert running.backend.calls == []


async def test_a_send_to_a_reading_client_arms_no_timer(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts to a client that reads are delivered without a send timeout armed per frame (only a
    frame that could fill the buffers past its high-water mark arms one)."""
    from pipeline.local.gateway import server

    armed: list[float] = []
    original = server.asyncio.timeout

    def counted(delay: float | None) -> Any:
        armed.append(delay or 0.0)
        return original(delay)

    monkeypatch.setattr(server.asyncio, "timeout", counted)
    ws, cid = await open_client(running)
    url = f"{running.connections_url}/@connections/{cid}"
    async with aiohttp.ClientSession() as http:
        for i in range(20):
            async with http.post(url, data=f"frame {i}".encode()) as answer:
                assert answer.status == 200
            assert await asyncio.wait_for(ws.recv(), 5) == f"frame {i}"
        async with http.post(url, data=b"y" * 120_000) as answer:  # past the 64 KiB mark
            assert answer.status == 200
        assert await asyncio.wait_for(ws.recv(), 5) == "y" * 120_000
    send_timeout = running.gateway.limits.send_timeout_s
    assert armed.count(send_timeout) == 1  # the 120 KB frame's only
    await ws.close()


async def test_a_client_that_stops_reading_is_dropped_and_posts_answer_410() -> None:
    """A post to a client whose buffers are full must not block the caller forever: after
    ``send_timeout_s`` the twin drops the client ($disconnect 1006) and the post gets 410."""
    import base64
    import os
    import socket

    run = await start_gateway(limits=GatewayLimits(send_timeout_s=0.3))
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads nothing
    try:
        raw.connect(("127.0.0.1", run.gateway.port))
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall((f"GET /dev HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        await until(lambda: bool(run.backend.of("PutItem")))
        cid = run.backend.of("PutItem")[-1].request["Item"]["connectionId"]["S"]
        url = f"{run.connections_url}/@connections/{cid}"
        statuses: list[int] = []
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            for _ in range(400):  # 400 x 100 KB: far more than the socket buffers hold
                async with http.post(url, data=b"x" * 100_000) as answer:
                    statuses.append(answer.status)
                if statuses[-1] != 200:
                    break
        assert statuses[-1] == 410, statuses[-5:]
        assert time.monotonic() - started < 15
        await until(lambda: len(disconnects(run, cid)) == 1)
        assert disconnects(run, cid)[0]["disconnectStatusCode"] == 1006
    finally:
        raw.close()
        await run.gateway.stop()
