"""The 32 KB frame quota and the 128 KB message quota, byte-exact, and the frame-header scanner.

AWS: a message over 32 KB must be split into frames of at most 32 KB; a larger frame or a message
over 128 KB closes the connection with 1009
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html).
"""

from __future__ import annotations

import asyncio
import struct

from gateway_kit import Running
from polling import until

from loadtest.hostile.cases import padded
from loadtest.hostile.rawws import (
    OP_CONT,
    OP_PING,
    OP_TEXT,
    Event,
    RawWebSocket,
    encode_frame,
)
from pipeline.local.gateway.protocol import FrameSizeScanner

KB = 1024


def disconnect_codes(run: Running) -> list[int]:
    return [c.envelope["disconnectStatusCode"] for c in run.backend.of("PutRecord", "$disconnect")]


def bodies(run: Running) -> list[str]:
    return [c.envelope["body"] for c in run.backend.of("PutRecord", "$default")]


async def next_close(ws: RawWebSocket) -> Event:
    for _ in range(100):  # bounded: pongs may come first
        event = await ws.recv(5)
        if event.kind in ("close", "eof", "timeout"):
            return event
    raise AssertionError("no close")


# --- the scanner, fed bytes ---------------------------------------------------------------

def test_scanner_accepts_frames_up_to_the_limit_in_any_chunking() -> None:
    stream = b"".join(encode_frame(OP_TEXT, b"a" * n) for n in (0, 125, 126, 65535, 32 * KB))
    scanner = FrameSizeScanner(64 * KB)
    assert all(scanner.feed(stream[i:i + 1]) is None for i in range(len(stream)))
    assert scanner.close_code is None
    assert FrameSizeScanner(64 * KB).feed(stream) is None


def test_scanner_flags_the_first_frame_over_the_limit_just_after_its_header() -> None:
    ok = encode_frame(OP_TEXT, b"a" * (32 * KB))
    bad = encode_frame(OP_CONT, b"b" * (32 * KB + 1))
    scanner = FrameSizeScanner(32 * KB)
    assert scanner.feed(ok + bad) == len(ok) + 2 + 2 + 4  # header, 16-bit length, mask
    assert (scanner.close_code, scanner.reason) == (1009, "Frame size 32769 exceeds 32768")
    assert scanner.feed(b"anything") is None  # after a violation: ignored


def test_scanner_flags_a_lying_64_bit_length_and_an_unmasked_frame() -> None:
    huge = FrameSizeScanner(32 * KB)
    assert huge.feed(encode_frame(OP_TEXT, b"", declared_length=2**63)[:6]) is None
    assert huge.feed(encode_frame(OP_TEXT, b"", declared_length=2**63)[6:]) is not None
    assert huge.close_code == 1009
    unmasked = FrameSizeScanner(32 * KB)
    assert unmasked.feed(encode_frame(OP_PING, b"p") + encode_frame(OP_TEXT, b"x", masked=False))
    assert unmasked.close_code == 1002


# --- the gateway, on the wire ---------------------------------------------------------------

async def test_single_frame_of_32k_passes_and_one_byte_more_closes_1009(running: Running) -> None:
    ws = await RawWebSocket.connect(running.ws_url)
    await ws.send(OP_TEXT, padded("nope", 32 * KB))
    await until(lambda: len(bodies(running)) == 1)
    await ws.send(OP_TEXT, padded("nope", 32 * KB + 1))
    close = await next_close(ws)
    assert (close.kind, close.code) == ("close", 1009)
    await until(lambda: disconnect_codes(running) == [1009])
    assert [len(b) for b in bodies(running)] == [32 * KB]  # the oversized frame went nowhere
    ws.abort()


async def test_frames_before_an_oversized_one_in_the_same_write_are_delivered(
        running: Running) -> None:
    ws = await RawWebSocket.connect(running.ws_url)
    await ws.send_raw(encode_frame(OP_TEXT, b'{"action":"a"}') + encode_frame(OP_TEXT, b'"b"')
                      + encode_frame(OP_TEXT, b"c" * (40 * KB)))
    assert (await next_close(ws)).code == 1009
    await until(lambda: disconnect_codes(running) == [1009])
    assert bodies(running) == ['{"action":"a"}', '"b"']
    ws.abort()


async def test_128k_in_32k_frames_passes_and_one_byte_more_closes_1009(running: Running) -> None:
    for size, expect_close in ((128 * KB, False), (128 * KB + 1, True)):
        ws = await RawWebSocket.connect(running.ws_url)
        payload = padded("nope", size)
        chunks = [payload[i:i + 32 * KB] for i in range(0, size, 32 * KB)]
        for i, chunk in enumerate(chunks):
            await ws.send(OP_TEXT if i == 0 else OP_CONT, chunk, fin=i == len(chunks) - 1)
        if expect_close:
            assert (await next_close(ws)).code == 1009
        else:
            await until(lambda: len(bodies(running)) == 1)
            assert bodies(running)[0] == payload.decode()
        await ws.close()
    await until(lambda: sorted(disconnect_codes(running)) == [1000, 1009])


async def test_unmasked_frame_closes_1002_before_it_is_routed(running: Running) -> None:
    ws = await RawWebSocket.connect(running.ws_url)
    await ws.send(OP_TEXT, b'{"action":"echo"}', masked=False)
    assert (await next_close(ws)).code == 1002
    await until(lambda: disconnect_codes(running) == [1002])
    assert bodies(running) == [] and running.backend.of("PutRecord", "echo") == []
    ws.abort()


async def test_bytes_sent_with_the_upgrade_request_are_checked_too(running: Running) -> None:
    # A client that does not wait for the 101 answer: its frames arrive with the request.
    reader, writer = await asyncio.open_connection("127.0.0.1", running.gateway.port)
    writer.write(b"GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 b"\r\n" + encode_frame(OP_TEXT, b'"early"') + encode_frame(OP_TEXT, b"x" * 40000))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    head = await asyncio.wait_for(reader.readexactly(4), 5)
    assert head[0] == 0x88 and struct.unpack("!H", head[2:4])[0] == 1009
    await until(lambda: disconnect_codes(running) == [1009])
    assert bodies(running) == ['"early"']
    writer.close()
