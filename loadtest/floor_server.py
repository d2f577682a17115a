"""The floor of the twin's shape: its hops and nothing else, to measure what they cost alone.

An echo through the twin crosses, at the least: a WebSocket server (aiohttp, as the gateway), a
process boundary to a worker (as a Lambda), and an HTTP POST back to the server's @connections
path signed and sent by the runtime's own client, then the WebSocket write. This server does
exactly that and no more: no VTL, no Kinesis, no event source mapping, no IAM, no quotas. Its
throughput next to a bare echo server's (``python -m loadtest.bench_floor``) is an upper bound for
any twin of this shape on the machine, however lean its emulation.

``python -m loadtest.floor_server [--port 0]`` prints ``FLOOR-READY ws://...``; the worker is
``python -m loadtest.floor_server --worker URL`` (started by the server, frames on its stdin).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import struct
import sys
import time
from concurrent.futures import Future
from typing import Any

import orjson
from aiohttp import WSMsgType, web

_HEADER = struct.Struct(">I")
STAGE = "dev"


class FloorServer:
    """WebSocket clients and ``POST /dev/@connections/{id}`` on one port, one worker process."""

    def __init__(self) -> None:
        self.clients: dict[str, web.WebSocketResponse] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._worker: asyncio.subprocess.Process | None = None
        self._next_id = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get(f"/{STAGE}", self._websocket)
        app.router.add_post(f"/{STAGE}/@connections/{{connection_id}}", self._post)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"ws://{host}:{bound}/{STAGE}"
        self._worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadtest.floor_server", "--worker",
            f"http://{host}:{bound}/{STAGE}", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert self._worker.stdout is not None
        # Ready means ready: the worker has imported the runtime's client (a cold start would
        # otherwise land on the first measured frame).
        if await asyncio.wait_for(self._worker.stdout.readline(), 30.0) != b"ready\n":
            raise RuntimeError("the floor server's worker did not start")
        return self.url

    async def stop(self) -> None:
        if self._worker is not None and self._worker.stdin is not None:
            self._worker.stdin.close()
            try:
                await asyncio.wait_for(self._worker.wait(), 5.0)
            except TimeoutError:
                self._worker.kill()
                await self._worker.wait()
        for ws in list(self.clients.values()):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._next_id += 1
        connection_id = f"floor{self._next_id:010d}="
        self.clients[connection_id] = ws
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._forward(connection_id, msg.data)
        finally:
            self.clients.pop(connection_id, None)
        return ws

    def _forward(self, connection_id: str, text: str) -> None:
        """The frame to the worker (as the twin hands a record to a function)."""
        assert self._worker is not None and self._worker.stdin is not None
        data = orjson.dumps({"c": connection_id, "f": text, "t": time.time() * 1000})
        self._worker.stdin.write(_HEADER.pack(len(data)) + data)

    async def _post(self, request: web.Request) -> web.StreamResponse:
        ws = self.clients.get(request.match_info["connection_id"])
        if ws is None or ws.closed:
            return web.Response(status=410)
        await ws.send_str((await request.read()).decode())
        return web.Response(status=200)


def _reply(message: dict[str, Any]) -> bytes:
    """The echo consumer's answer (echo with ``timing``, as the load test expects)."""
    now = time.time() * 1000
    try:
        frame = orjson.loads(message["f"])
    except orjson.JSONDecodeError:
        frame = None
    if not isinstance(frame, dict) or frame.get("action") != "echo":
        return orjson.dumps({"action": "error", "error": "unknown_action", "message": "floor"})
    timing = {"gatewayMs": message["t"], "streamMs": message["t"], "consumerMs": now,
              "replyMs": now}
    return orjson.dumps({"action": "echo", "data": frame.get("data"), "timing": timing})


def worker(endpoint: str) -> None:
    """Read batches of frames from stdin; post each reply with the runtime's client, the batch's
    posts concurrent (its reply pool), the next batch after the last post, as an invocation."""
    from botocore.credentials import Credentials

    from pipeline import DEFAULT_REGION
    from pipeline.runtime.connections import ConnectionsClient

    client = ConnectionsClient(endpoint, region=DEFAULT_REGION,
                               credentials=lambda: Credentials("AKIAFLOOR", "floor-secret"))
    client.poster.signer.sign("warm", "/", b"")  # first use loads what signing needs
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    fd = sys.stdin.fileno()
    buffer = b""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        buffer += chunk
        batch: list[dict[str, Any]] = []
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + size:
                break
            batch.append(orjson.loads(buffer[_HEADER.size:_HEADER.size + size]))
            buffer = buffer[_HEADER.size + size:]
        futures: list[Future[None]] = [
            client.submit(functools.partial(_post, client, message["c"], _reply(message)),
                          priority=True)
            for message in batch]
        for future in futures:
            future.result()


def _post(client: Any, connection_id: str, data: bytes) -> None:
    client.post(connection_id, data, priority=True)


async def _main(port: int) -> None:
    server = FloorServer()
    print("FLOOR-READY", await server.start(port=port), flush=True)
    try:
        await asyncio.Future()  # until Ctrl-C or SIGTERM
    finally:
        await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m loadtest.floor_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
            worker(args.worker)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main(args.port))
