"""A deliberately permissive WebSocket client: it sends any bytes, including ones RFC 6455 forbids.

Client libraries refuse to produce invalid UTF-8 in a text frame, unmasked or oversized control
frames, reserved opcodes or a close in the middle of a fragmented message; the hostile run needs
exactly those, so this client writes frames itself (RFC 6455 section 5.2) on a plain asyncio
stream and reads what the server answers (text, binary, close code and reason, pong).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import ssl
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER_BYTES = 64 * 1024
_MAX_FRAME_BYTES = 16 * 1024 * 1024  # what we accept from the server: bounded memory


class RawWebSocketError(Exception):
    """Base of this module's errors."""


class HandshakeError(RawWebSocketError):
    """The server refused the upgrade (``status`` is its HTTP status, 0 when not HTTP)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"handshake refused: {status} {detail}")
        self.status = status


@dataclass(frozen=True)
class Event:
    """One thing the server sent: ``kind`` is text, binary, close, ping, pong, eof or timeout."""

    kind: str
    text: str = ""
    data: bytes = b""
    code: int | None = None  # close frames: None when the close frame had no code


def encode_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True,
                 rsv: int = 0, declared_length: int | None = None) -> bytes:
    """One frame on the wire. ``declared_length`` lies about the payload length when given."""
    length = len(payload) if declared_length is None else declared_length
    head = bytearray([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF])
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if not masked:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _mask_fast(payload, key)


def _mask_fast(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big")


class RawWebSocket:
    """One client connection. Use :meth:`connect`; every read takes a timeout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._partial: list[bytes] = []
        self._partial_opcode = OP_TEXT

    @classmethod
    async def connect(cls, url: str, *, timeout: float = 10.0,
                      headers: dict[str, str] | None = None) -> RawWebSocket:
        """Open the TCP (or TLS for wss://) connection and complete the upgrade."""
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if secure else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        context = ssl.create_default_context() if secure else None
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=context, server_hostname=host if secure else None,
            limit=_MAX_HEADER_BYTES), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13", "User-Agent: pipeline-hostile/1"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise HandshakeError(0, "no HTTP answer") from exc
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ", 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        if status != 101:
            writer.close()
            raise HandshakeError(status, status_line)
        answer = {k.strip().lower(): v.strip() for k, _, v in
                  (line.partition(":") for line in header_lines if line)}
        expected = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        if answer.get("sec-websocket-accept") != expected:
            writer.close()
            raise HandshakeError(status, "bad Sec-WebSocket-Accept")
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (several frames, half a frame, garbage)."""
        self._writer.write(data)
        await self._writer.drain()

    async def send(self, opcode: int, payload: bytes = b"", *, fin: bool = True,
                   masked: bool = True, rsv: int = 0) -> None:
        """Write one frame."""
        await self.send_raw(encode_frame(opcode, payload, fin=fin, masked=masked, rsv=rsv))

    async def send_text(self, text: str) -> None:
        await self.send(OP_TEXT, text.encode())

    async def recv(self, timeout: float) -> Event:
        """The next message, close, ping or pong; ``eof`` or ``timeout`` otherwise."""
        try:
            return await asyncio.wait_for(self._next(), timeout)
        except TimeoutError:
            return Event("timeout")
        except (asyncio.IncompleteReadError, ConnectionError):
            return Event("eof")

    async def _next(self) -> Event:
        while True:
            first, second = await self._reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", await self._reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await self._reader.readexactly(8))[0]
            if length > _MAX_FRAME_BYTES:
                raise ConnectionError("server frame too large")
            key = await self._reader.readexactly(4) if second & 0x80 else b""
            payload = await self._reader.readexactly(length)
            if key:
                payload = _mask_fast(payload, key)
            opcode, fin = first & 0xF, bool(first & 0x80)
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return Event("close", text=payload[2:].decode("utf-8", "replace"), code=code)
            if opcode in (OP_PING, OP_PONG):
                return Event("ping" if opcode == OP_PING else "pong", data=payload)
            if opcode != OP_CONT:
                self._partial_opcode = opcode
            self._partial.append(payload)
            if not fin:
                continue
            data, self._partial = b"".join(self._partial), []
            if self._partial_opcode == OP_TEXT:
                return Event("text", text=data.decode("utf-8", "replace"), data=data)
            return Event("binary", data=data)

    async def close(self, code: int | None = 1000) -> None:
        """Send a close frame (unless ``code`` is None) and drop the connection."""
        if code is not None and not self._writer.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(OP_CLOSE, struct.pack("!H", code))
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the gateway reports 1006)."""
        if not self._writer.is_closing():
            self._writer.close()
