"""The WebSocket client of the checks: one connection whose frames are collected as they arrive.

Checks wait for a frame that matches a predicate until the check's deadline
(:meth:`Client.expect`), so every wait is bounded and a timeout says what did arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from pipeline.verify.report import CheckFailed

SHOWN_FRAMES = 3
SHOWN_CHARS = 160


class Client:
    """An open connection; :attr:`frames` holds every message received (JSON parsed if it is)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Any] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url: str, headers: Sequence[tuple[str, str]], timeout: float, *,
                   subprotocols: Sequence[str] | None = None,
                   compression: str | None = "deflate") -> Client:
        """Connect (handshake bounded by ``timeout``); websockets' exceptions pass through."""
        ws = await connect(url, additional_headers=list(headers), open_timeout=max(timeout, 0.1),
                           subprotocols=[Subprotocol(p) for p in subprotocols or []] or None,
                           compression=compression, close_timeout=2, max_size=None)
        return cls(ws)

    @property
    def closed(self) -> bool:
        return self._reader.done()

    @property
    def close_code(self) -> int | None:
        """The code of the close frame the server sent (``None``: none received)."""
        return self.ws.close_code if self.closed else None

    async def send(self, frame: Any) -> None:
        """Send a JSON frame (a ``str`` is sent as it is)."""
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def send_fragments(self, fragments: Iterable[str]) -> None:
        """Send one message as several frames."""
        await self.ws.send(fragments)

    async def expect(self, match: Callable[[Any], bool], what: str, deadline: float,
                     start: int = 0) -> tuple[int, Any]:
        """The first frame at index >= ``start`` that ``match``es, with its index.

        Raises :class:`CheckFailed` when the connection closes or ``deadline`` (loop time)
        passes first; the message names ``what`` and shows the last frames received.
        """
        loop = asyncio.get_running_loop()
        index = start
        while True:
            self._changed.clear()
            while index < len(self.frames):
                if match(self.frames[index]):
                    return index, self.frames[index]
                index += 1
            if self.closed:
                raise CheckFailed(f"connection closed ({self.close_code}) before {what}; "
                                  f"got {self.describe(start)}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise CheckFailed(f"no {what} before the deadline; got {self.describe(start)}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_closed(self, deadline: float) -> int | None:
        """Wait for the connection to close; its close code, or CheckFailed at the deadline."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), max(deadline - loop.time(), 0))
        except TimeoutError as exc:
            raise CheckFailed(f"the connection stayed open; got {self.describe(0)}") from exc
        return self.close_code

    def describe(self, start: int = 0) -> str:
        """The last few frames received since ``start``, shortened, for a check's detail."""
        frames = self.frames[start:]
        if not frames:
            return "no frames"
        shown = [_short(f) for f in frames[-SHOWN_FRAMES:]]
        more = f"{len(frames) - len(shown)} more, then " if len(frames) > len(shown) else ""
        return f"{len(frames)} frame(s): {more}" + ", ".join(shown)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and wait (bounded by websockets' close timeout)."""
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._reader), 3)
        self._reader.cancel()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                try:
                    self.frames.append(json.loads(message))
                except ValueError:
                    self.frames.append(message)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self._changed.set()


def _short(frame: Any) -> str:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."
