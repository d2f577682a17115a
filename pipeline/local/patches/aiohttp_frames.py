"""aiohttp's WebSocket reader, guarded: API Gateway's 32 KB frame quota and RFC 6455 masking.

aiohttp offers no hook between the socket and its WebSocket frame parser; the guard replaces the
parser aiohttp hands the connection's protocol (``_payload_parser``, ``_message_tail``,
``_reader``: aiohttp internals, hence :func:`~pipeline.local.patches.require`).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http import WebSocketError

from pipeline.local.patches import require

LOG = logging.getLogger("pipeline.local.gateway.server")


class FrameGuard:
    """Stands in front of aiohttp's WebSocketReader and checks every frame header.

    aiohttp only limits the reassembled message; API Gateway also closes 1009 on any single frame
    over 32 KB (and RFC 6455 requires 1002 for an unmasked client frame). Frames before the bad
    one are still delivered, then the reader's queue gets the error, exactly as aiohttp reports
    its own violations (the app then sees an ERROR message and aiohttp sends the close frame).
    """

    def __init__(self, parser: Any, queue: Any, limit: int) -> None:
        # The sans-I/O scanner lives with the gateway's protocol, which imports this module.
        from pipeline.local.gateway.protocol import FrameSizeScanner

        self._parser = parser
        self._queue = queue
        self.scanner = FrameSizeScanner(limit)
        self._tripped = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._tripped:
            return True, b""
        cut = self.scanner.feed(bytes(data))
        if cut is None:
            result: tuple[bool, bytes] = self._parser.feed_data(data)
            return result
        self._tripped = True
        eof, _ = self._parser.feed_data(data[:cut])
        if not eof and self.scanner.close_code is not None:  # no earlier error of the reader's
            self._queue.set_exception(WebSocketError(self.scanner.close_code, self.scanner.reason))
        return True, b""

    def feed_eof(self) -> None:
        self._parser.feed_eof()


class FrameLimitedWebSocket(web.WebSocketResponse):
    """A WebSocketResponse whose reader enforces the 32 KB frame quota (see :class:`FrameGuard`).

    The guard is installed where aiohttp hands the parser to the connection's protocol; it relies
    on aiohttp internals (``_payload_parser``, ``_message_tail``, ``_reader``), checked by
    tests/local/gateway/test_server.py and tests/local/test_hostile.py. Without them it logs a
    warning and only the 128 KB message limit holds.
    """

    _version_checked = False  # once per process: importlib.metadata reads the disk (~0.5 ms)

    def __init__(self, *, frame_bytes: int, **kwargs: Any) -> None:
        if not FrameLimitedWebSocket._version_checked:
            require("aiohttp")
            FrameLimitedWebSocket._version_checked = True
        super().__init__(**kwargs)
        self._frame_bytes = frame_bytes

    def _post_start(self, request: Any, protocol: Any, writer: Any) -> None:
        handler = request.protocol
        if not hasattr(handler, "_payload_parser") or not hasattr(handler, "_message_tail"):
            LOG.warning("aiohttp internals changed: the %d-byte frame limit is not enforced",
                        self._frame_bytes)
            super()._post_start(request, protocol, writer)
            return
        # Bytes that arrived with the upgrade request go through the guard too, in order.
        tail, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        guard = FrameGuard(handler._payload_parser, self._reader, self._frame_bytes)
        handler._payload_parser = guard
        if tail:
            guard.feed_data(tail)
