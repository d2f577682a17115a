"""``python -m pipeline client [FRAME ...]``: send frames to a stage and print every reply.

A scripted client for a first try: it sends each FRAME (or, without any, each non-empty line of
stdin) in order and keeps printing what arrives until nothing has come for ``--wait`` seconds,
so replies that come back through the stream are not cut off (``printf ... | python -m
websockets`` closes as soon as stdin ends, before any reply). Sent frames are printed as
``> frame``, received ones as ``< frame``. Exit 0; 1 when the stage cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

DEFAULT_URL = "ws://127.0.0.1:8080/dev"
DEFAULT_WAIT_S = 2.0


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The ``client`` command's arguments."""
    parser.add_argument("frames", nargs="*", metavar="FRAME",
                        help="text frames to send, in order (default: the lines of stdin)")
    parser.add_argument("--url", default=DEFAULT_URL,
                        help=f"the stage's WebSocket URL (default {DEFAULT_URL}, `make local`)")
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
                        help="stop after this long without a reply (default "
                             f"{DEFAULT_WAIT_S:g}); replies come asynchronously, via the stream")


async def converse(url: str, frames: Sequence[str], wait_s: float) -> list[str]:
    """Send ``frames`` and return (and print) every message received until ``wait_s`` of quiet."""
    received: list[str] = []
    async with connect(url, open_timeout=10, ping_interval=None) as ws:
        for frame in frames:
            print(f"> {frame}", flush=True)
            await ws.send(frame)
        while True:
            try:
                message = await asyncio.wait_for(ws.recv(), wait_s)
            except (TimeoutError, ConnectionClosed):
                break
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            received.append(text)
            print(f"< {text}", flush=True)
    return received


def run(args: argparse.Namespace) -> int:
    """Run the conversation; one line and exit 1 when the stage cannot be reached."""
    if not args.wait > 0:
        print("--wait must be a positive number of seconds", file=sys.stderr)
        return 2
    frames = list(args.frames) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    try:
        asyncio.run(converse(args.url, frames, args.wait))
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = " (a wrong stage path? `make local` serves ws://127.0.0.1:8080/dev)" \
            if status == 403 else ""
        print(f"{args.url}: the handshake was refused with HTTP {status}{hint}", file=sys.stderr)
        return 1
    except InvalidURI:
        print(f"{args.url} is not a ws:// or wss:// URL", file=sys.stderr)
        return 2
    except (OSError, TimeoutError, WebSocketException) as exc:
        print(f"cannot connect to {args.url} ({type(exc).__name__}: {exc}): is the twin "
              "running? start it with `make local`", file=sys.stderr)
        return 1
    return 0
