"""The @connections client's response reader, fed bytes in pieces (no network)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.runtime import http_response
from pipeline.runtime.http_response import Response, read_answer, read_response

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
    with pytest.raises(http_response.RemoteDisconnected):
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
    with pytest.raises(http_response.HTTPException):
        read(answer)


def test_an_endless_head_is_refused() -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 200_000
    with pytest.raises(http_response.LineTooLong):
        read(endless, 4096)


# --- the quick path (an answer whole in the first read) and the full reader agree --------------

APIGW_200 = (b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 20:00:00 GMT\r\n"
             b"Content-Type: application/json\r\nContent-Length: 0\r\nConnection: keep-alive\r\n"
             b"x-amzn-RequestId: 2f1c5a3e-8d7b-4c1a-9e0f-3b2a1c0d9e8f\r\n"
             b"x-amz-apigw-id: AbCdEfGhIjKlMnO=\r\n\r\n")

ANSWERS = [
    APIGW_200,
    GONE,
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",  # no reason phrase
    b"HTTP/1.1 200 OK\r\n\r\n",  # no header at all: read until closed
    b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\nleft",  # bytes past a 204
    b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 413 Too Large\r\nCONTENT-LENGTH: 4\r\nCONNECTION: Close\r\n\r\nbig!",
    b"HTTP/1.1 429 Slow\r\ncontent-length:2\r\nconnection:keep-alive, close\r\n\r\n{}",
    b"HTTP/1.1 500 Oops\r\nContent-Length: 3\r\nConnection: Keep-Alive\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",  # repeated
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\nContent-Length: 2\r\n\r\nok",  # one bad
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: x\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 2\r\n\r\nokok!",  # the last
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\n"
    b"Content-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\nConnection : close\r\n\r\nok",  # space, colon
    b"HTTP/1.1 200 OK\r\n Content-Length: 2\r\n\r\nok",  # leading whitespace
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\nX: y\r\n\r\nok",  # a bare LF inside a line
    b"HTTP/1.1 200 OK\r\nX-Note: a\rb\r\nContent-Length: 2\r\n\r\nok",  # a bare CR
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n0123456789",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nno colon\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\n: empty name\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException:http://x/\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200\rOK\r\nContent-Length: 0\r\n\r\n",
]


def outcome(read_with: Callable[[Callable[[int], bytes], bytes], object], data: bytes) -> object:
    try:
        return read_with(feeder(b"", 1), data)  # all of it in the first read, nothing after
    except http_response.HTTPException as exc:
        return type(exc)


@pytest.mark.parametrize("answer", ANSWERS)
def test_an_answer_whole_in_one_read_is_read_as_the_full_reader_reads_it(answer: bytes) -> None:
    """From the same first read, the quick path (which hands anything unusual to the full
    reader) and the full reader give the same status, body, error type and reuse, or error."""
    assert outcome(read_answer, answer) == outcome(http_response._read_all, answer)


def test_the_usual_answers_take_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def no(*_: object) -> object:
        raise AssertionError("the full reader")

    monkeypatch.setattr(http_response, "_read_all", no)
    assert read_answer(feeder(b"", 1), APIGW_200) == (200, b"", None, True)
    assert read_answer(feeder(b"", 1), APIGW_200.replace(b"keep-alive", b"close")) == (
        200, b"", None, False)
    large = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\n{\"a\":\"b\"}"
    assert read_answer(feeder(b"", 1), large) == (413, b'{"a":"b"}', None, True)


@pytest.mark.parametrize("split", [len(APIGW_200) - 5, len(GONE) - 40, len(GONE) - 1])
def test_a_head_or_body_split_across_reads_is_read_whole(split: int) -> None:
    for answer in (APIGW_200, GONE):
        cut = min(split, len(answer) - 1)
        r = read_answer(feeder(answer[cut:], 1 << 20), answer[:cut])
        assert r == http_response._read_all(feeder(b"", 1), answer)


def test_a_body_larger_than_one_read_comes_over_a_socket_whole() -> None:
    import socket
    import threading

    body = bytes(range(256)) * 1024  # 256 KiB: four reads of RECV_SIZE at least
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    a, b = socket.socketpair()
    with a, b:
        writer = threading.Thread(target=b.sendall, args=(answer,))
        writer.start()
        status, got, _, reusable = read_answer(a.recv)
        writer.join()
    assert (status, got == body, reusable) == (200, True, True)


def test_the_errors_are_related_as_http_clients_are() -> None:
    """Callers catch ``HTTPException`` for a bad answer and ``ConnectionResetError`` (or
    ``RemoteDisconnected``) for a stale keep-alive, as with ``http.client``'s classes."""
    closed = http_response.RemoteDisconnected("closed")
    assert isinstance(closed, ConnectionResetError) and isinstance(closed, OSError)
    assert isinstance(closed, http_response.BadStatusLine)
    assert isinstance(closed, http_response.HTTPException)
    partial = http_response.IncompleteRead(b"abc", 7)
    assert (partial.partial, partial.expected) == (b"abc", 7)
    assert isinstance(partial, http_response.HTTPException)
    assert issubclass(http_response.LineTooLong, http_response.HTTPException)
