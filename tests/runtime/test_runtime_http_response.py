"""The @connections client's response reader, fed bytes in pieces (no network)."""

from __future__ import annotations

import http.client
from collections.abc import Callable

import pytest

from pipeline.runtime.http_response import Response, read_response

GONE = (b"HTTP/1.1 410 Gone\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
        b"Content-Type: application/json\r\nContent-Length: 32\r\nConnection: keep-alive\r\n"
        b"x-amzn-RequestId: 1\r\nx-amzn-ErrorType: GoneException\r\n\r\n"
        b'{"message":"Gone","code":"Gone"}')


def feeder(data: bytes, piece: int) -> Callable[[int], bytes]:
    chunks = [data[i:i + piece] for i in range(0, len(data), piece)]

    def recv(_: int) -> bytes:
        return chunks.pop(0) if chunks else b""

    return recv


def read(data: bytes, piece: int = 1 << 20) -> Response:
    return read_response(feeder(data, piece))


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_a_keep_alive_answer_in_any_pieces(piece: int) -> None:
    r = read(GONE, piece)
    assert (r.status, r.error_type, r.reusable) == (410, "GoneException", True)
    assert r.body == b'{"message":"Gone","code":"Gone"}'


def test_an_empty_200_is_reusable() -> None:
    r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert (r.status, r.body, r.error_type, r.reusable) == (200, b"", None, True)


@pytest.mark.parametrize("piece", [1, 5, 1 << 20])
def test_a_chunked_body_is_joined_and_trailers_dropped(piece: int) -> None:
    r = read(b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n"
             b"3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n", piece)
    assert (r.status, r.body, r.reusable) == (400, b"abc0123456789", True)


def test_interim_answers_are_skipped() -> None:
    r = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n")
    assert (r.status, r.body, r.reusable) == (204, b"", True)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\n\r\nok",  # no length: the body runs until the server closes
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",  # bytes past the body
])
def test_answers_that_end_the_connection(answer: bytes) -> None:
    r = read(answer)
    assert r.status == 200 and r.body.startswith(b"ok") and not r.reusable


def test_http_1_0_with_keep_alive_is_reusable() -> None:
    assert read(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").reusable


def test_a_closed_connection_before_any_byte_is_remote_disconnected() -> None:
    with pytest.raises(http.client.RemoteDisconnected):
        read(b"")


@pytest.mark.parametrize("answer", [
    b"HTTP/2 200 OK\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n", b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",  # cut short
    b"HTTP/1.1 200 OK\r\nContent-Le",  # head cut short
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
])
def test_malformed_answers_raise_http_exceptions(answer: bytes) -> None:
    with pytest.raises(http.client.HTTPException):
        read(answer)


def test_an_endless_head_is_refused() -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 200_000
    with pytest.raises(http.client.LineTooLong):
        read(endless, 4096)
