"""Reading one HTTP/1.1 response off a keep-alive socket: the @connections client's parser.

``http.client.HTTPResponse`` costs ~30 µs of CPU per small response here (a buffered reader per
response, then ``email.feedparser`` for the headers: ~half of the runtime's CPU per post,
``python -m loadtest.bench_post`` under cProfile). The answers of @connections are a status line,
a handful of headers and an empty or tiny JSON body, so this reads them with ``recv`` into one
buffer and splits the head by hand; only the fields the client uses are kept (status, body,
``x-amzn-ErrorType``, whether the connection may be reused). An answer that came whole in the
first read with nothing unusual in it (every success of @connections) is read without splitting
its head into lines (:func:`read_answer`: ~1.5 µs instead of ~3.5 µs of CPU here, warm).

What it follows (RFC 9112): interim 1xx answers are skipped; the body is ``Content-Length``
bytes, or chunked (``Transfer-Encoding: chunked``, trailers dropped), or none for 204 and 304, or
everything until the server closes; ``Connection: close``, HTTP/1.0 without ``keep-alive``, a
read-until-close body or any byte past the body make the connection not reusable. A malformed
answer raises an :class:`HTTPException`; a connection closed before any byte of the answer
raises :class:`RemoteDisconnected` (the pool's "stale keep-alive" signal), as ``http.client``
does. The exceptions are this module's, named and related as ``http.client``'s are:
``http.client`` itself is not imported (its ``email`` parser is ~20 ms of a cold start).
"""

from __future__ import annotations

import re
from collections.abc import Callable


class HTTPException(Exception):
    """A malformed or unreadable answer (``http.client.HTTPException``'s role)."""


class IncompleteRead(HTTPException):
    """The connection ended inside the body: ``partial`` bytes read, ``expected`` more."""

    def __init__(self, partial: bytes, expected: int | None = None) -> None:
        super().__init__(f"{len(partial)} bytes read"
                         + (f", {expected} more expected" if expected is not None else ""))
        self.partial, self.expected = partial, expected


class LineTooLong(HTTPException):
    """A head longer than :data:`MAX_HEAD`."""


class BadStatusLine(HTTPException):
    """A status line that is not ``HTTP/1.x NNN ...``."""


class RemoteDisconnected(ConnectionResetError, BadStatusLine):
    """Closed before any byte of the answer: the stale keep-alive signal (a
    ``ConnectionResetError``, as ``http.client.RemoteDisconnected`` is)."""

RECV_SIZE = 65536
MAX_HEAD = 65536  # bytes of status line and headers
MAX_BODY = 16 * 1024 * 1024


class Response:
    """What the client keeps of one answer."""

    __slots__ = ("body", "error_type", "reusable", "status")

    def __init__(self, status: int, body: bytes, error_type: str | None, reusable: bool) -> None:
        self.status, self.body, self.error_type, self.reusable = status, body, error_type, reusable


class _Reader:
    """A byte buffer filled from ``recv``."""

    __slots__ = ("buf", "pos", "recv")

    def __init__(self, recv: Callable[[int], bytes], first: bytes) -> None:
        self.recv, self.buf, self.pos = recv, first, 0

    def more(self) -> bool:
        data = self.recv(RECV_SIZE)
        if not data:
            return False
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def until(self, mark: bytes, limit: int) -> bytes:
        """Bytes up to ``mark`` (consumed with it), or ``IncompleteRead``/``LineTooLong``."""
        while True:
            end = self.buf.find(mark, self.pos)
            if end >= 0:
                out = self.buf[self.pos:end]
                self.pos = end + len(mark)
                return out
            if len(self.buf) - self.pos > limit:
                raise LineTooLong("response head")
            if not self.more():
                raise IncompleteRead(self.buf[self.pos:])

    def exactly(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            if not self.more():
                raise IncompleteRead(self.buf[self.pos:], n - len(self.buf) + self.pos)
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def rest(self) -> bytes:
        """Everything until the peer closes."""
        while self.more():
            if len(self.buf) - self.pos > MAX_BODY:
                raise HTTPException("response body too large")
        out = self.buf[self.pos:]
        self.pos = len(self.buf)
        return out

    def leftover(self) -> bool:
        return self.pos < len(self.buf)


Answer = tuple[int, bytes, str | None, bool]  # status, body, x-amzn-ErrorType, reusable

# What the quick path leaves to the full reader (in the lowercased head, after each CRLF): a
# header name that is not an RFC 9110 token right before its colon (whitespace around it, which
# the full reader strips; no colon at all), a chunked body, an error type (kept in its own case).
_ODD_LINE = re.compile(
    rb"\r\n(?:(?![!#$%&'*+.^_`|~0-9a-z-]+:)|transfer-encoding:|x-amzn-errortype:)")
# The status lines the quick path takes, by their first 13 bytes: HTTP/1.1, a final status
# (2xx-5xx), a reason phrase; the full reader checks any other.
_STATUS_LINES = {b"HTTP/1.1 %d " % code: code for code in range(200, 600)}
_CONTENT_LENGTH = b"\r\ncontent-length:"
_CONNECTION = b"\r\nconnection:"


def read_response(recv: Callable[[int], bytes]) -> Response:
    """Read one answer to a ``POST`` (no ``Expect``) with ``recv`` (``socket.recv``)."""
    return Response(*read_answer(recv))


def read_answer(recv: Callable[[int], bytes], first: bytes | None = None) -> Answer:
    """:func:`read_response`'s answer as a tuple, ``first`` being the first bytes read (read
    with ``recv`` when not given).

    The answers of @connections come whole in one read: ``HTTP/1.1 <2xx-5xx> <reason>``,
    header lines with token names, no chunked body, no error type, and a ``Content-Length``
    body. Those are read here in a few C calls that take their argument as it is (a dict lookup
    of the status line, ``partition``, ``split``, one regular expression over the lowercased
    head: ``bytes.find`` and ``startswith`` parse a format string for theirs); any other answer,
    or anything unusual in one (a repeated Content-Length or Connection...), is read by the full
    reader from the same bytes, so both give the same answer for everything."""
    if first is None:
        first = recv(RECV_SIZE)
    head, blank, rest = first.partition(b"\r\n\r\n")
    status = _STATUS_LINES.get(head[:13])
    if status is None or not blank:
        return _read_all(recv, first)
    lowered = head.lower()
    if _ODD_LINE.search(lowered):
        return _read_all(recv, first)
    length: int | None = None
    found = lowered.split(_CONTENT_LENGTH)
    if len(found) == 2:
        try:
            length = int(found[1].partition(b"\r\n")[0])
        except ValueError:
            return _read_all(recv, first)
        if length < 0 or length > MAX_BODY:
            return _read_all(recv, first)
    elif len(found) > 2:
        return _read_all(recv, first)
    close = False
    found = lowered.split(_CONNECTION)
    if len(found) == 2:  # "close" in the value (else keep-alive, or nothing said)
        close = bool(found[1].partition(b"\r\n")[0].partition(b"close")[1])
    elif len(found) > 2:
        return _read_all(recv, first)
    if status == 204 or status == 304:
        return status, b"", None, not close and not rest
    if length is None or len(rest) < length:  # read until closed, or not all here
        return _read_all(recv, first)
    if len(rest) == length:
        return status, rest, None, not close
    return status, rest[:length], None, False  # bytes past the body


def _read_all(recv: Callable[[int], bytes], first: bytes) -> Answer:
    """The full reader (module docstring), from the first bytes read."""
    if not first:
        raise RemoteDisconnected("Remote end closed connection without response")
    reader = _Reader(recv, first)
    while True:
        head = reader.until(b"\r\n\r\n", MAX_HEAD)
        lines = head.split(b"\r\n")
        status, version = _status_line(lines[0])
        if status >= 200:
            break
        # 1xx: an interim answer (101 is not asked for); the final one follows
    length: int | None = None
    chunked = False
    close = version == b"HTTP/1.0"
    error_type: str | None = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HTTPException(f"malformed header line {line[:60]!r}")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise HTTPException(f"bad Content-Length {value[:40]!r}") from None
            if length < 0 or length > MAX_BODY:
                raise HTTPException(f"bad Content-Length {length}")
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                close = False
        elif name == b"x-amzn-errortype":
            error_type = value.strip().decode("latin-1")
    if status in (204, 304):
        body = b""
    elif chunked:
        body = _chunked(reader)
    elif length is not None:
        body = reader.exactly(length)
    else:
        body, close = reader.rest(), True
    return status, body, error_type, not close and not reader.leftover()


def _status_line(line: bytes) -> tuple[int, bytes]:
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if (version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit()
            or rest[3:4] not in (b"", b" ")):
        raise BadStatusLine(repr(line[:80]))
    status = int(code)
    if status < 100:
        raise BadStatusLine(repr(line[:80]))
    return status, version


def _chunked(reader: _Reader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = reader.until(b"\r\n", 1024).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise HTTPException(f"bad chunk size {size_line[:40]!r}") from None
        if size < 0:
            raise HTTPException(f"bad chunk size {size}")
        if size == 0:
            while reader.until(b"\r\n", MAX_HEAD):  # trailer fields, up to the empty line
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise HTTPException("response body too large")
        parts.append(reader.exactly(size))
        if reader.exactly(2) != b"\r\n":
            raise HTTPException("chunk not followed by CRLF")
