"""A real HTTP server on 127.0.0.1 that answers like API Gateway's @connections API.

moto's @connections accepts every id and never answers 410, so the runtime's behaviour on
410/413/429/5xx is tested against this stub instead (the subject is the runtime, not the API).
Errors carry AWS's status, ``x-amzn-ErrorType`` code and a JSON message, as API Gateway does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

MAX_MESSAGE_BYTES = 128 * 1024


@dataclass
class AtConnections:
    """Configure answers per connection id and read back what was posted."""

    gone: set[str] = field(default_factory=set)
    too_large: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)  # 403 ForbiddenException
    flaky: Counter[str] = field(default_factory=Counter)  # id -> how many 500s before 200
    throttle: Counter[str] = field(default_factory=Counter)  # id -> how many 429s before 200
    posts: list[tuple[str, bytes]] = field(default_factory=list)  # delivered only
    delivered_at: list[float] = field(default_factory=list)  # time.monotonic() of each post
    attempts: Counter[str] = field(default_factory=Counter)  # every POST, any answer
    delay_s: float = 0.0  # simulated service latency per request
    in_flight: int = 0
    max_in_flight: int = 0
    tcp_connections: int = 0  # accepted TCP connections (keep-alive reuse shows here)
    sockets: list[socket.socket] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, cid: str, body: bytes) -> tuple[int, str]:
        with self.lock:
            self.attempts[cid] += 1
            if cid in self.gone:
                return 410, "GoneException"
            if cid in self.too_large or len(body) > MAX_MESSAGE_BYTES:
                return 413, "PayloadTooLargeException"
            if cid in self.forbidden:
                return 403, "ForbiddenException"
            if cid in self.broken:
                return 500, "InternalServerErrorException"
            if self.flaky[cid] > 0:
                self.flaky[cid] -= 1
                return 500, "InternalServerErrorException"
            if self.throttle[cid] > 0:
                self.throttle[cid] -= 1
                return 429, "LimitExceededException"
            self.posts.append((cid, body))
            self.delivered_at.append(time.monotonic())
            return 200, ""

    def received(self, cid: str) -> list[dict[str, object]]:
        """The JSON frames delivered to one connection, in order."""
        with self.lock:
            return [json.loads(b) for c, b in self.posts if c == cid]

    def drop_connections(self) -> None:
        """Close every accepted connection from the server side (an idle keep-alive timeout)."""
        with self.lock:
            socks, self.sockets = self.sockets, []
        for sock in socks:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def delivered_to(self) -> list[str]:
        with self.lock:
            return [c for c, _ in self.posts]

    def wait_for_posts(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.posts) >= n:
                    return
            time.sleep(0.005)
        raise AssertionError(f"expected {n} posts, got {len(self.posts)}")


def _handler(state: AtConnections) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real endpoint

        def setup(self) -> None:
            super().setup()
            with state.lock:
                state.tcp_connections += 1
                state.sockets.append(self.request)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?", 1)[0]
            if "/@connections/" not in path:
                self._send(404, "NotFoundException", "no such resource")
                return
            cid = unquote(path.rsplit("/@connections/", 1)[1])
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            if state.delay_s:
                time.sleep(state.delay_s)  # latency of the real service, not a wait for work
            status, code = state.answer(cid, body)
            with state.lock:
                state.in_flight -= 1
            self._send(status, code, "" if status == 200 else code)

        def _send(self, status: int, code: str, message: str) -> None:
            payload = b"" if status == 200 else json.dumps({"message": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("x-amzn-ErrorType", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve() -> Iterator[AtConnections]:
    """Run the stub on a free port; ``state.url`` is the endpoint (with a ``/dev`` stage)."""
    state = AtConnections()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/dev"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
