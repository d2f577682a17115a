"""The ``ping`` route: a MOCK integration answered ``{"action":"pong"}`` by the gateway itself,
no stream record; pings keep a connection past the idle timeout (``--idle-timeout``)."""

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
from websockets.exceptions import ConnectionClosed

from pipeline.aws.limits import REGION
from pipeline.local.gateway.mock import mock_response
from pipeline.local.harness import Twin, start_twin, stop_twin

pytestmark = [pytest.mark.twin, pytest.mark.synth]
TIMEOUT_S = 10.0
IDLE_S = 2.0


@pytest.fixture(scope="module")
def idle_twin(cloud_assembly: Path) -> Iterator[Twin]:
    running = start_twin(cloud_assembly, "--idle-timeout", str(IDLE_S))
    yield running
    stop_twin(running)


def _records(twin: Twin) -> Any:
    kinesis = boto3.client("kinesis", endpoint_url=twin.aws, region_name=REGION,
                           aws_access_key_id="test", aws_secret_access_key="test")
    (stream,) = kinesis.list_streams()["StreamNames"]
    iterators = [kinesis.get_shard_iterator(
        StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="LATEST")["ShardIterator"]
        for s in kinesis.list_shards(StreamName=stream)["Shards"]]

    def read() -> list[dict[str, Any]]:
        out = []
        for iterator in iterators:
            for record in kinesis.get_records(ShardIterator=iterator)["Records"]:
                data = record["Data"]
                out.append(json.loads(data if isinstance(data, bytes) else base64.b64decode(data)))
        return out
    return read


async def test_ping_is_answered_pong_with_no_stream_record(idle_twin: Twin) -> None:
    read = _records(idle_twin)
    marker = f"after-ping-{time.monotonic_ns()}"
    async with websockets.connect(idle_twin.ws, open_timeout=TIMEOUT_S) as ws:
        for _ in range(3):
            await ws.send('{"action":"ping"}')
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S)) == {"action": "pong"}
        await ws.send(json.dumps({"action": "echo", "data": marker}))
        echo = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
    assert echo["data"] == marker  # the echo's record is written, so the stream is readable
    routes = [e["routeKey"] for e in read()]
    assert "echo" in routes and "ping" not in routes


async def test_whoami_answers_the_connection_id_with_no_stream_record(idle_twin: Twin) -> None:
    """``whoami`` (issue 25): the sender's own id from ``$context``, the id the consumers see."""
    read = _records(idle_twin)
    marker = f"after-whoami-{time.monotonic_ns()}"
    async with websockets.connect(idle_twin.ws, open_timeout=TIMEOUT_S) as ws:
        await ws.send('{"action":"whoami"}')
        me = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        assert set(me) == {"action", "connectionId"} and me["action"] == "whoami"
        assert isinstance(me["connectionId"], str) and len(me["connectionId"]) > 8
        await ws.send(json.dumps({"action": "echo", "data": marker}))
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))["data"] == marker
    envelopes = read()
    assert "whoami" not in [e["routeKey"] for e in envelopes]
    (echo,) = [e for e in envelopes if e["routeKey"] == "echo" and marker in json.dumps(e)]
    assert echo["connectionId"] == me["connectionId"]


async def test_pings_keep_a_connection_past_the_idle_timeout(idle_twin: Twin) -> None:
    loop = asyncio.get_running_loop()
    async with websockets.connect(idle_twin.ws, open_timeout=TIMEOUT_S) as ws:
        end = loop.time() + 3 * IDLE_S
        while loop.time() < end:
            await ws.send('{"action":"ping"}')
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))["action"] == "pong"
            await asyncio.sleep(IDLE_S / 4)  # the client's ping interval, not a wait for work
    async with websockets.connect(idle_twin.ws, open_timeout=TIMEOUT_S) as idle:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(idle.recv(), 3 * IDLE_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


@pytest.mark.parametrize(("rendered", "status"), [
    (b'{"statusCode": 200}', 200), (b'{"statusCode": 404}', 404), (b"{}", 500),
    (b"not json", 500), (b'{"statusCode": true}', 500), (b'{"statusCode": "200"}', 500)])
def test_the_mock_status_comes_from_the_rendered_template(rendered: bytes, status: int) -> None:
    assert mock_response(rendered).status == status
