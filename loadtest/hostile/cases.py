"""The hostile inputs and the answer each one must get (docs/contracts.md, docs/hostile-input.md).

Every case runs on its own fresh connection. Answers come from three places: the gateway (close
codes: 1009 frame over 32 KB or message over 128 KB, 1007 invalid UTF-8, 1003 binary, 1002
protocol errors), the `fallback` consumer (error frames ``invalid_frame`` / ``unknown_action``)
and the routed consumers (`echo`, `chat`). Quotas:
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest.hostile.rawws import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    RawWebSocket,
    encode_frame,
)

KB = 1024
FRAME_LIMIT = 32 * KB
MESSAGE_LIMIT = 128 * KB
PING_STORM = 200
BURST = 500

Action = Callable[[RawWebSocket], Awaitable[None]]
MISSING: Any = object()


@dataclass(frozen=True)
class Expect:
    """The documented answer: a close code, or ``count`` reply frames matching error/action.

    No close, no error and no action means silence: nothing but the expected pongs.
    """

    close: int | None = None
    error: str | None = None
    action: str | None = None
    count: int = 1
    data: Any = MISSING  # the echoed data of every matching reply (echo cases)
    received: Any = MISSING  # unknown_action's "received"
    pongs: int = 0
    in_order: bool = False  # matching replies carry data 0, 1, 2... in order
    drop: bool = False  # the client itself drops the connection: nothing to observe

    @property
    def silent(self) -> bool:
        return self.close is None and self.error is None and self.action is None and not self.drop

    def matches(self, reply: Any) -> bool:
        """Whether one reply frame (parsed JSON) is one of the expected replies."""
        if not isinstance(reply, dict):
            return False
        if self.error is not None:
            return reply.get("action") == "error" and reply.get("error") == self.error
        return self.action is not None and reply.get("action") == self.action

    def describe(self) -> str:
        if self.drop:
            return "nothing (client drops)"
        if self.close is not None:
            return f"close {self.close}"
        if self.silent:
            return f"{self.pongs} pongs only" if self.pongs else "nothing"
        what = f"error {self.error}" if self.error else self.action or ""
        return what if self.count == 1 else f"{what} x{self.count}"


@dataclass(frozen=True)
class Case:
    """One hostile input: what is sent, and the answer it must get."""

    kind: str
    send: Action
    expect: Expect
    note: str = ""
    tags: tuple[str, ...] = field(default=())


def text(payload: str) -> Action:
    async def act(ws: RawWebSocket) -> None:
        await ws.send_text(payload)
    return act


def raw_text(payload: bytes) -> Action:
    async def act(ws: RawWebSocket) -> None:
        await ws.send(OP_TEXT, payload)
    return act


def fragments(payload: bytes, size: int = FRAME_LIMIT, opcode: int = OP_TEXT) -> Action:
    """One message as frames of at most *size* bytes."""
    async def act(ws: RawWebSocket) -> None:
        parts = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
        for i, part in enumerate(parts):
            await ws.send(opcode if i == 0 else OP_CONT, part, fin=i == len(parts) - 1)
    return act


def frames(*items: tuple[int, bytes, bool]) -> Action:
    """Frames (opcode, payload, fin) in one write, as a peer that ignores the protocol would."""
    async def act(ws: RawWebSocket) -> None:
        await ws.send_raw(b"".join(encode_frame(op, data, fin=fin) for op, data, fin in items))
    return act


def padded(action: str, size: int) -> bytes:
    """A JSON object with *action* padded to exactly *size* bytes."""
    head = f'{{"action":"{action}","pad":"'.encode()
    return head + b"p" * (size - len(head) - 2) + b'"}'


async def _ping_storm(ws: RawWebSocket) -> None:
    await ws.send_raw(b"".join(encode_frame(OP_PING, b"%d" % i) for i in range(PING_STORM)))


async def _burst(ws: RawWebSocket) -> None:
    await ws.send_raw(b"".join(
        encode_frame(OP_TEXT, b'{"action":"echo","data":%d}' % i) for i in range(BURST)))


async def _close_mid_fragment(ws: RawWebSocket) -> None:
    await ws.send(OP_TEXT, b'{"action":"echo","da', fin=False)
    await ws.send(OP_CLOSE, struct.pack("!H", 1000))


async def _unmasked(ws: RawWebSocket) -> None:
    await ws.send(OP_TEXT, b'{"action":"echo","data":1}', masked=False)


async def _rsv1(ws: RawWebSocket) -> None:
    await ws.send(OP_TEXT, b'{"action":"echo","data":1}', rsv=4)


async def _lying_length(ws: RawWebSocket) -> None:
    await ws.send_raw(encode_frame(OP_TEXT, b"x" * 10, declared_length=2**63 - 1))


async def _eof_mid_frame(ws: RawWebSocket) -> None:
    # A header promising 100 bytes, 10 of them, then the connection drops (1006 at the gateway).
    await ws.send_raw(encode_frame(OP_TEXT, b"x" * 100)[:16])
    ws.abort()


def _nested(depth: int) -> str:
    return '{"action":"echo","data":' + "[" * depth + "]" * depth + "}"


ECHO_SPOOF = ('{"action":"echo","data":"mine","connectionId":"AAAAAAAAAAAAAAA=",'
              '"routeKey":"$connect","requestId":"spoofed","eventType":"DISCONNECT"}')
BREAKOUT = '"}, "connectionId": "AAAAAAAAAAAAAAA=", "x": {"' + "\\'" + " it's \\\\"
VTL = "$context.connectionId #set($x = 1) ${x} $util.escapeJavaScript('a') #foreach($i in [1..3])$i#end"
LONG_ACTION = "a" * 10_000


def build() -> list[Case]:
    """Every hostile case, in table order."""
    e_invalid = Expect(error="invalid_frame")
    e_unknown = Expect(error="unknown_action", received=None)
    c: list[Case] = [
        Case("non-JSON text", text("hello, world"), e_invalid, "$default -> fallback"),
        Case("invalid UTF-8 in a text frame", raw_text(b'{"action":"echo","data":"\xff\xfe"}'),
             Expect(close=1007), "RFC 6455 section 8.1"),
        Case("invalid UTF-8 split across fragments",
             frames((OP_TEXT, b'{"data":"\xe2\x82', False), (OP_CONT, b'("}', True)),
             Expect(close=1007)),
        Case("message > 128 KB (32 KB fragments)", fragments(padded("nope", MESSAGE_LIMIT + 1)),
             Expect(close=1009)),
        Case("message of exactly 128 KB (4 x 32 KB)", fragments(padded("nope", MESSAGE_LIMIT)),
             Expect(error="unknown_action", received="nope")),
        Case("single frame > 32 KB", raw_text(padded("nope", FRAME_LIMIT + 1)),
             Expect(close=1009), "AWS: a larger frame closes the connection with 1009"),
        Case("single frame of exactly 32 KB", raw_text(padded("nope", FRAME_LIMIT)),
             Expect(error="unknown_action", received="nope")),
        Case("single 200 KB frame", raw_text(b"x" * (200 * KB)), Expect(close=1009)),
        Case("deeply nested JSON (10,000 levels)", text(_nested(10_000)), e_invalid,
             "beyond the JSON parsers' depth limit: not JSON"),
        Case("spoofed connectionId/routeKey/requestId", text(ECHO_SPOOF),
             Expect(action="echo", data="mine"), "the reply reaches the real sender"),
        Case('{"action": "$connect"}', text('{"action":"$connect"}'),
             Expect(error="unknown_action", received="$connect"),
             "$connect/$disconnect cannot be selected by a frame"),
        Case('{"action": "$disconnect"}', text('{"action":"$disconnect"}'),
             Expect(error="unknown_action", received="$disconnect")),
        Case('{"action": "$default"}', text('{"action":"$default"}'),
             Expect(error="unknown_action", received="$default")),
        Case('{"action": null}', text('{"action":null}'), e_unknown,
             "only string actions select a route"),
        Case("action is a number", text('{"action":1}'), e_unknown),
        Case("action is an array", text('{"action":["echo"]}'), e_unknown),
        Case("action is an object", text('{"action":{"echo":1}}'), e_unknown),
        Case("no action key", text('{"data":1}'), e_unknown),
        Case('action "ECHO" (case differs)', text('{"action":"ECHO"}'),
             Expect(error="unknown_action", received="ECHO")),
        Case("empty text frame", text(""), e_invalid),
        Case("whitespace only", text(" \t\r\n "), e_invalid),
        Case("binary frame", fragments(b'{"action":"echo"}', opcode=OP_BINARY),
             Expect(close=1003), "the API declares no binary media types"),
        Case("raw control characters", text('{"action":"echo","data":"a\x01\x1b\x7fb"}'),
             e_invalid, "unescaped control characters are not JSON"),
        Case("escaped control characters", text('{"action":"echo","data":"\\u0001\\u001b\\t"}'),
             Expect(action="echo", data="\x01\x1b\t")),
        Case("NUL bytes (raw)", text("\x00\x00{\x00}"), e_invalid),
        Case("NUL as a JSON escape", text('{"action":"echo","data":"a\\u0000b"}'),
             Expect(action="echo", data="a\x00b")),
        Case("lone surrogate as a JSON escape", text('{"action":"echo","data":"\\ud800"}'),
             e_invalid, "not valid Unicode: the parsers refuse it"),
        Case("U+2028/U+2029 line separators", text('{"action":"echo","data":"a\u2028b\u2029c"}'),
             Expect(action="echo", data="a\u2028b\u2029c")),
        Case("emoji and astral characters", text('{"action":"echo","data":"🙂👩‍💻𝄞"}'),
             Expect(action="echo", data="🙂👩‍💻𝄞")),
        Case("very long action name (10,000)", text(f'{{"action":"{LONG_ACTION}"}}'),
             Expect(error="unknown_action", received=LONG_ACTION)),
        Case("VTL injection in data", text('{"action":"echo","data":' + _json(VTL) + "}"),
             Expect(action="echo", data=VTL), "rendered as data, never evaluated"),
        Case("VTL injection as action", text('{"action":"#set($a=1)$context.requestId"}'),
             Expect(error="unknown_action", received="#set($a=1)$context.requestId")),
        Case("JSON-breaking quotes and backslashes", text(
            '{"action":"echo","data":' + _json(BREAKOUT) + "}"),
             Expect(action="echo", data=BREAKOUT), "the envelope stays valid JSON"),
        Case("duplicate action keys", text('{"action":"nope","action":"echo","data":2}'),
             Expect(action="echo", data=2), "the last key wins"),
        Case("trailing garbage after JSON", text('{"action":"echo","data":1} trailing'),
             e_invalid),
        Case("BOM-prefixed JSON", text('\ufeff{"action":"echo","data":1}'), e_invalid,
             "RFC 8259 section 8.1: a BOM is not JSON"),
        Case("10,000-element array", text("[" + ",".join(["0"] * 10_000) + "]"), e_invalid),
        Case("number out of range (1e400)", text('{"action":"echo","data":1e400}'), e_invalid,
             "no double holds it: the parsers refuse it"),
        Case("chat send without joining", text('{"action":"send","room":"lobby","text":"hi"}'),
             Expect(error="not_a_member")),
        Case("chat join, invalid room", text('{"action":"join","room":"no spaces!"}'),
             Expect(error="invalid_request")),
        Case("chat join, room missing", text('{"action":"join"}'),
             Expect(error="invalid_request")),
        Case("chat send, text too long", text(
            '{"action":"send","room":"lobby","text":"' + "t" * 4001 + '"}'),
             Expect(error="invalid_request")),
        Case("chat join, room is a number", text('{"action":"join","room":5}'),
             Expect(error="invalid_request")),
        Case("chat leave a room never joined", text('{"action":"leave","room":"never"}'),
             Expect(action="left"), "idempotent"),
        Case("client asks for a broadcast", text('{"action":"broadcast","room":"r","data":1}'),
             Expect(error="unknown_action", received="broadcast"),
             "no such API route: a client cannot make a SERVER broadcast record"),
        Case(f"ping storm ({PING_STORM})", _ping_storm, Expect(pongs=PING_STORM)),
        Case(f"burst of {BURST} echo frames", _burst, Expect(action="echo", count=BURST, in_order=True),
             "all answered, in order"),
        Case("close in the middle of a fragmented message", _close_mid_fragment,
             Expect(close=1000), "the partial message is dropped"),
        Case("connection dropped mid-frame", _eof_mid_frame, Expect(drop=True),
             "the gateway reports $disconnect 1006"),
        Case("continuation frame with no start", frames((OP_CONT, b"x", True)),
             Expect(close=1002)),
        Case("new text frame inside a fragmented message",
             frames((OP_TEXT, b"{", False), (OP_TEXT, b"}", True)), Expect(close=1002)),
        Case("reserved opcode 0x3", frames((0x3, b"x", True)), Expect(close=1002)),
        Case("fragmented ping", frames((OP_PING, b"p", False)), Expect(close=1002)),
        Case("ping payload > 125 bytes", frames((OP_PING, b"p" * 126, True)),
             Expect(close=1002)),
        Case("unmasked client frame", _unmasked, Expect(close=1002), "RFC 6455 section 5.1"),
        Case("RSV1 bit without a negotiated extension", _rsv1, Expect(close=1002)),
        Case("frame header declaring 2^63-1 bytes", _lying_length, Expect(close=1009)),
        Case("close frame with invalid UTF-8 reason",
             frames((OP_CLOSE, struct.pack("!H", 1000) + b"\xff\xfe", True)), Expect(close=1007)),
        Case("close frame of 1 byte", frames((OP_CLOSE, b"\x03", True)), Expect(close=1002)),
        Case("client close 4000", frames((OP_CLOSE, struct.pack("!H", 4000) + b"bye", True)),
             Expect(close=1000), "the gateway answers 1000; $disconnect reports 4000"),
        Case("close with invalid code 999", frames((OP_CLOSE, struct.pack("!H", 999), True)),
             Expect(close=1002)),
    ]
    return c


def _json(value: str) -> str:
    return orjson.dumps(value).decode()
