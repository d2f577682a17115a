"""An HTTP/1.1 keep-alive server for a WSGI app: aiohttp on its own event loop, in a daemon thread.

The twin's AWS port (:class:`~pipeline.local.iam.wsgi.GuardedAwsServer`) serves the functions'
SDK calls. werkzeug's development server, which served it before, answers every request with
``Connection: close`` and then drains the socket: each call was a new TCP connection, a new
thread and a drain (a quarter of the twin's CPU in a join storm), and keep-alive cannot be switched
on from outside (its drain swallows the next pipelined request). This server keeps connections
alive (HTTP/1.1's default; an idle one is closed after :data:`KEEPALIVE_TIMEOUT_S`) and reads each
request whole before the app sees it.

Where the app runs: inline, on the server's loop thread. moto is not thread-safe and every call
holds the GIL anyway, so threads only added switching. The exception is a request the
``blocking`` predicate names (the AWS port's: SQS ``ReceiveMessage``, whose long poll sleeps inside
the app): those run in daemon threads, at most :data:`BLOCKING_CALLS` at once, so one waiting call
does not stall every other request. Daemon threads, not a ``ThreadPoolExecutor``: the executor's
workers are joined at interpreter exit, and a long poll in moto cannot be interrupted (it waits
until its deadline, up to 20 s), so exit would wait for it; werkzeug's request threads were
daemons too.

The environ is PEP 3333's, built as werkzeug's server with moto's ``MotoRequestHandler`` built it,
so moto and Flask see the same request: ``PATH_INFO`` percent-decoded and ``QUERY_STRING`` raw,
both latin-1 strings of the request's bytes; ``REQUEST_URI``/``RAW_URI`` the target as sent (moto's
``Request.raw_path`` reads ``RAW_URI``); a header whose name has ``_`` is dropped (WSGI cannot tell
``X_Foo`` from ``X-Foo``) except moto's ``x-amz-meta-*``, kept under its own spelling as moto's
handler keeps it; repeated headers joined with ``,``; an absolute-form target's host in
``HTTP_HOST``; a chunked body (aiohttp decodes it) with ``wsgi.input_terminated`` and its decoded
length in ``CONTENT_LENGTH``; ``Expect: 100-continue`` answered before the body is read, as
``http.server`` does. Not there: ``werkzeug.socket`` (the raw socket; nothing here upgrades a
connection) and TLS. Request bodies are not decompressed (``Content-Encoding`` goes to the app as
sent) and a body over ``max_body`` is refused with 413.

The response is buffered: the app's iterable is read to the end (and closed, PEP 3333), then sent
with its status, every header (repeated ones, e.g. ``Set-Cookie``, kept) and a ``Content-Length``
of what was read; a HEAD answer keeps the app's ``Content-Length`` and sends no body. An app that
raises is logged and answered 500, as werkzeug answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes, urlsplit

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    environ_key_for_header,
    should_preserve_original_header_name,
)
from multidict import CIMultiDict

from pipeline.local import ACCEPT_BACKLOG

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Whether a request (its environ and whole body) may block in the app for long.
Blocking = Callable[[Mapping[str, Any], bytes], bool]
Answer = tuple[str, list[tuple[str, str]], bytes]
T = TypeVar("T")

# An idle keep-alive connection is closed after this. Longer than the runtime's own pool keeps a
# connection idle (pipeline.runtime.signed_http.IDLE_LIMIT_S, 50 s), so its client closes first;
# boto3 (urllib3) checks that a pooled connection is still open before reusing it.
KEEPALIVE_TIMEOUT_S = 60.0
BLOCKING_CALLS = 16  # requests the blocking predicate names, running at once
MAX_LINE_BYTES = 65536  # request line and each header line: http.server's (werkzeug's) limit
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 1.0  # what stop() gives a request still running (only blocking ones can be)
_WITHOUT_BODY_HEADERS = frozenset({"content-length", "transfer-encoding"})


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop where it is installed, as the twin's main loop (``pipeline.local.cli``)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def wsgi_environ(request: web.BaseRequest, body: bytes, server: tuple[str, int]
                 ) -> dict[str, Any]:
    """The WSGI environ of ``request`` (whose whole body is ``body``), served at ``server``."""
    # aiohttp's parser decoded the target as UTF-8 with surrogateescape: back to its bytes, as
    # latin-1 (WSGI's "bytes as str").
    target = request.raw_path.encode("utf-8", "surrogateescape").decode("latin-1")
    absolute_host: str | None = None
    if target.startswith(("http://", "https://")):  # absolute form: the URL's host is the host
        url = urlsplit(target)
        path, query, absolute_host = url.path, url.query, url.netloc
    else:
        path, _, query = target.partition("#")[0].partition("?")
    peer = request.transport.get_extra_info("peername") if request.transport else None
    remote_addr, remote_port = (str(peer[0]), int(peer[1])) if peer else ("<local>", 0)
    version = request.version
    environ: dict[str, Any] = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,  # blocking requests run in threads, beside the loop's
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "REQUEST_URI": target,
        "RAW_URI": target,
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": remote_port,  # an int, as werkzeug's
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{version.major}.{version.minor}",
    }
    headers = [(name.decode("latin-1"), value.decode("latin-1"))
               for name, value in request.raw_headers]
    dashed: set[str] = set()
    for name, value in headers:
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        value = value.replace("\r\n", "")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = f"HTTP_{key}"
            if key in environ:
                value = f"{environ[key]},{value}"
        environ[key] = value
        dashed.add(environ_key_for_header(name))
    # moto's MotoRequestHandler: S3 metadata names may hold "_"; keep them, under their spelling,
    # unless a dashed header of the same key came too.
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in headers:
        if not should_preserve_original_header_name(name):
            continue
        key = environ_key_for_header(name)
        if key in dashed:
            continue
        names.setdefault(key, name)
        values.setdefault(key, []).append(value.replace("\r\n", ""))
    for key, key_values in values.items():
        environ[key] = ",".join(key_values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names
    if any("chunked" in te.lower() for te in request.headers.getall("Transfer-Encoding", ())):
        environ["wsgi.input_terminated"] = True
        environ["CONTENT_LENGTH"] = str(len(body))
    if absolute_host:
        environ["HTTP_HOST"] = absolute_host
    return environ


def environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """A WSGI request's headers by name (``HTTP_X_AMZ_TARGET`` -> ``X-Amz-Target``), its
    ``Content-Type`` among them: what :func:`wsgi_environ` made of them, back."""
    out = {k[5:].replace("_", "-").title(): str(v) for k, v in environ.items()
           if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        out["Content-Type"] = str(environ["CONTENT_TYPE"])
    return out


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> Answer:
    """Call ``app``: its status line, its headers and its whole body (the iterable closed)."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        # Nothing is sent before the app returns, so an error's exc_info may always replace the
        # status and headers (PEP 3333); a second call without it is the app's mistake.
        if started and exc_info is None:
            raise AssertionError("start_response called twice without exc_info")
        started[:] = [(status, list(headers))]
        return chunks.append  # the legacy write()

    result = app(environ, start_response)
    try:
        for chunk in result:
            if chunk:
                chunks.append(bytes(chunk))
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the WSGI app returned without calling start_response")
    status, headers = started[0]
    return status, headers, b"".join(chunks)


def http_response(method: str, answer: Answer) -> web.Response:
    """The aiohttp response of a WSGI answer. The length is the body's (the app's own is kept
    only for HEAD, whose body is not sent); aiohttp drops both for 204 and 304."""
    status, headers, body = answer
    code, _, reason = status.strip().partition(" ")
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers:
        if name.lower() not in _WITHOUT_BODY_HEADERS or (
                method == "HEAD" and name.lower() == "content-length"):
            out.add(name, value)
    return web.Response(body=body, status=int(code), reason=reason.strip() or None, headers=out)


class _BlockingCalls:
    """Calls that may block for long, each in its own daemon thread, at most ``size`` at once
    (the others wait their turn on the loop, not blocking it)."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)

    async def run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        async with self._slots:
            done: asyncio.Future[T] = loop.create_future()

            def settle(result: T | None, error: BaseException | None) -> None:
                if done.done():  # its request was cancelled (stop())
                    return
                if error is not None:
                    done.set_exception(error)
                else:
                    done.set_result(result)  # type: ignore[arg-type]

            def work() -> None:
                result: T | None = None
                error: BaseException | None = None
                try:
                    result = call()
                except BaseException as exc:  # handed to the request's task
                    error = exc
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (stop())
                    loop.call_soon_threadsafe(settle, result, error)

            threading.Thread(target=work, daemon=True, name="wsgi-blocking-call").start()
            return await done


class WsgiServer:
    """Serve ``app`` on ``host:port`` over HTTP/1.1 keep-alive, from a daemon thread; requests
    ``blocking`` names run in threads of their own (module docstring)."""

    def __init__(self, host: str, port: int, app: WsgiApp, *, blocking: Blocking | None = None,
                 max_body: int, name: str = "wsgi-server") -> None:
        self._host, self._port, self._app = host, port, app
        self._blocking, self._max_body, self._name = blocking, max_body, name
        self._address: tuple[str, int] = (host, port)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._calls: _BlockingCalls | None = None

    def start(self) -> tuple[str, int]:
        """Bind and listen here (raises ``OSError`` if the port is taken), serve in a daemon
        thread; returns the address (port 0 picks a free one)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(ACCEPT_BACKLOG)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        host, port = sock.getsockname()[:2]
        self._address = (str(host), int(port))
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sock, ready), daemon=True,
                                        name=self._name)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"{self._name}: not serving after {START_TIMEOUT_S} s")
        if self._failure is not None:
            self.stop()
            raise self._failure
        return self._address

    def stop(self) -> None:
        """Stop listening, close the connections (a request still running gets
        :data:`SHUTDOWN_GRACE_S`) and join the thread (at most :data:`STOP_TIMEOUT_S`)."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        self._loop = self._stopping = self._thread = None
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(timeout=STOP_TIMEOUT_S)
            if thread.is_alive():
                log.warning("%s: still stopping after %s s", self._name, STOP_TIMEOUT_S)

    # --- the server's thread ------------------------------------------------------------------
    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(self._serve(sock, ready))
        except BaseException as exc:  # before serving: start() raises it
            if not ready.is_set():
                self._failure = exc
                ready.set()
            else:
                log.exception("%s: stopped by an error", self._name)
        finally:
            sock.close()

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._calls = _BlockingCalls(BLOCKING_CALLS)
        server = web.Server(
            self._handle, request_factory=self._request, access_log=None,
            keepalive_timeout=KEEPALIVE_TIMEOUT_S, auto_decompress=False,
            max_line_size=MAX_LINE_BYTES, max_field_size=MAX_LINE_BYTES)
        runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        try:
            await web.SockSite(runner, sock, backlog=ACCEPT_BACKLOG).start()
            stopping = asyncio.Event()
            self._loop, self._stopping = loop, stopping
            ready.set()
            await stopping.wait()
        finally:
            await runner.cleanup()

    def _request(self, message: RawRequestMessage, payload: StreamReader,
                 protocol: RequestHandler, writer: AbstractStreamWriter,
                 task: asyncio.Task[None]) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task,
                               asyncio.get_running_loop(), client_max_size=self._max_body)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if (request.version >= HttpVersion11
                and request.headers.get("Expect", "").lower() == "100-continue"):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # as aiohttp's own expect handler: not the body's
        body = await request.read()  # 413 past max_body (aiohttp's HTTPRequestEntityTooLarge)
        environ = wsgi_environ(request, body, self._address)
        try:
            if self._blocking is not None and self._blocking(environ, body):
                assert self._calls is not None
                answer = await self._calls.run(lambda: call_wsgi(self._app, environ))
            else:
                answer = call_wsgi(self._app, environ)
        except Exception:
            log.exception("%s: error on %s %s", self._name, request.method, request.raw_path)
            answer = ("500 Internal Server Error",
                      [("Content-Type", "text/plain; charset=utf-8")], b"Internal Server Error")
        return http_response(request.method, answer)
