"""The floor server (loadtest/floor_server.py): the twin's hops, really crossed, and nothing else."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from websockets.asyncio.client import connect

from loadtest.bench import sequential_rtt
from loadtest.floor_server import FloorServer


async def test_every_echo_crosses_the_worker_and_comes_back() -> None:
    server = FloorServer()
    url = await server.start()
    try:
        result = await sequential_rtt(url, frames=50)
        assert result["count"] == 50 and result["lost"] == 0
        async with connect(url) as ws:
            await ws.send('{"action":"echo","data":{"n":1}}')
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["action"] == "echo" and reply["data"] == {"n": 1}
            timing = reply["timing"]  # stamped by the server, then by the worker process
            assert timing["gatewayMs"] <= timing["consumerMs"] <= timing["replyMs"]
            await ws.send("not json")
            error = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert error["action"] == "error"
    finally:
        await server.stop()


async def test_a_post_to_an_unknown_connection_is_gone() -> None:
    server = FloorServer()
    url = await server.start()
    try:
        http = url.replace("ws://", "http://")
        async with aiohttp.ClientSession() as session, session.post(
                f"{http}/@connections/nobody=", data=b"x") as response:
            assert response.status == 410
    finally:
        await server.stop()
