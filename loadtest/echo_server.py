"""A bare WebSocket server that answers like the pipeline's consumers, with no pipeline behind it.

It is the baseline of the benchmark (what the WebSocket layer alone costs) and the target of the
load test's own end-to-end test. Protocol: docs/contracts.md (echo with ``timing``, chat rooms,
error frames). ``python -m loadtest.echo_server [--port 0]`` prints ``ECHO-READY ws://...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class EchoServer:
    """Echo, join/leave/send (rooms) and error frames; ``url`` once started."""

    def __init__(self) -> None:
        self.rooms: defaultdict[str, set[ServerConnection]] = defaultdict(set)
        self.clients: set[ServerConnection] = set()
        self.server: Server | None = None
        self.url = ""
        self.stored = 0  # acked `send` frames, numbering the stand-in sequence numbers

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.server = await serve(
            self._handle, host, port, compression=None, ping_interval=None, max_size=2**20
        )
        bound = next(iter(self.server.sockets)).getsockname()
        self.url = f"ws://{host}:{bound[1]}/dev"
        return self.url

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def broadcast(self, data: object) -> None:
        """Send ``{"action":"broadcast","room":null,"data":data}`` to every connection."""
        out = {"action": "broadcast", "room": None, "data": data}
        for ws in list(self.clients):
            await _send(ws, out)

    async def _handle(self, ws: ServerConnection) -> None:
        self.clients.add(ws)
        try:
            async for message in ws:
                await self._answer(ws, message)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(ws)
            for members in self.rooms.values():
                members.discard(ws)

    async def _answer(self, ws: ServerConnection, message: str | bytes) -> None:
        now = time.time() * 1000
        try:
            frame: Any = orjson.loads(message)
        except orjson.JSONDecodeError:
            frame = None
        if not isinstance(frame, dict):
            await _send(ws, {"action": "error", "error": "invalid_frame", "message": "not JSON"})
            return
        action = frame.get("action")
        if action == "echo":
            timing = {"gatewayMs": now, "streamMs": now, "consumerMs": now, "replyMs": now}
            await _send(ws, {"action": "echo", "data": frame.get("data"), "timing": timing})
        elif action in ("join", "leave") and isinstance(frame.get("room"), str):
            room = frame["room"]
            if action == "join":
                self.rooms[room].add(ws)
            else:
                self.rooms[room].discard(ws)
            await _send(ws, {"action": action + "ed" if action == "join" else "left", "room": room})
        elif action == "send" and isinstance(frame.get("room"), str):
            # `send` is an acked route (docs/acks.md): the gateway acks before any delivery.
            self.stored += 1
            await _send(ws, {"action": "ack", "route": "send", "requestId": str(self.stored),
                             "shardId": "shardId-000000000000",
                             "sequenceNumber": str(self.stored)})
            out = {"action": "message", "room": frame["room"], "from": str(ws.id),
                   "text": frame.get("text")}  # fmt: skip
            for member in list(self.rooms.get(frame["room"], ())):
                if member is not ws:
                    await _send(member, out)
        else:
            await _send(ws, {"action": "error", "error": "unknown_action", "message": str(action)})


async def _send(ws: ServerConnection, obj: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.send(orjson.dumps(obj).decode())


async def _main(port: int) -> None:
    server = EchoServer()
    print("ECHO-READY", await server.start(port=port), flush=True)
    await asyncio.Future()  # until Ctrl-C


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m loadtest.echo_server")
    parser.add_argument("--port", type=int, default=0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args().port))
