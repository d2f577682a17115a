"""A lean SigV4-signed ``POST @connections/{id}``: the hot path of :class:`ConnectionsClient`.

boto3's ``post_to_connection`` costs ~1 ms of CPU per call under the GIL (request building,
serialisation, event hooks, signing, parsing), so a 48-thread pool is barely faster than a loop.
This module sends the same request over keep-alive sockets (one per concurrent caller, pooled
LIFO; the request written in one ``sendall``, the answer read with one ``recv`` and parsed by
:mod:`.http_response`: measured 2-3x less CPU per request than urllib3's
``HTTPConnectionPool.urlopen`` on this machine, which is why urllib3 is not used) and a
Signature Version 4 signer that produces exactly the signature botocore's ``SigV4Auth`` produces
for the same request (tests/runtime/test_runtime_connections.py::
test_the_signature_is_the_one_botocore_computes checks it, for :meth:`SigV4Signer.sign` and for
the bytes :meth:`SignedPoster.request` sends), with the signing key's HMAC pads cached per day,
and the timestamp, frozen credentials and every part of a post's canonical request, string to
sign and head that does not depend on the connection or the body cached per second
(:class:`PostPlan`). The signer, the connections and the answer parser also carry the runtime's
one other AWS call, DescribeStreamSummary (:mod:`.aws_json`).
https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html

A sequential post is two system calls (``sendto``, ``recvfrom``); on this 2-core VM against
``loadtest.bench_post``'s local endpoint about half of its CPU is the kernel's (the loopback
delivery and the wake-up of the endpoint on send, the sleep and wake-up on recv), the rest is
this module's Python: building and signing the request (~2.4 µs warm), reading the answer
(~1.5 µs), the pool.

Why not botocore's signer: ``python -m loadtest.bench_signing`` (CPU per signature of the same
``POST /prod/@connections/<id>`` with a session token, one process, same run) measured 2.8 µs
here against 81 µs for ``SigV4Auth.add_auth`` on an ``AWSRequest`` (66 µs for ``add_auth`` alone
on a request built once; load average 2.9): botocore costs ~29x the CPU, far above the 1.2x at
which this signer would be dropped for it (2-core Intel Xeon @ 2.8 GHz, Python 3.11).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import importlib.util
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from pipeline import DEFAULT_REGION

from .exceptions import PipelineRuntimeError
from .http_response import RECV_SIZE, HTTPException, RemoteDisconnected, read_answer

SERVICE = "execute-api"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
IDLE_LIMIT_S = 50.0  # a pooled connection idle longer than this is not reused
_STALE = (RemoteDisconnected, BrokenPipeError, ConnectionResetError)
_ALGORITHM = "AWS4-HMAC-SHA256"

def region_of(endpoint_url: str, default: str | None = None) -> str:
    """``<apiId>.execute-api.<region>.amazonaws.com`` -> region, else ``default``/env."""
    parts = (urlsplit(endpoint_url).hostname or "").split(".")
    if len(parts) >= 4 and parts[1] == SERVICE and parts[3] == "amazonaws":
        return parts[2]
    return default or environment_region()


def environment_region(environ: Mapping[str, str] | None = None) -> str:
    """``AWS_REGION`` (Lambda sets it), else ``AWS_DEFAULT_REGION``, else the default."""
    env = os.environ if environ is None else environ
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def host_header(scheme: str, host: str, port: int | None) -> str:
    """The Host value botocore signs: lowercase, default port left out."""
    host = host.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is None or port == {"http": 80, "https": 443}.get(scheme):
        return host
    return f"{host}:{port}"


@functools.lru_cache(maxsize=4096)
def canonical_uri(path: str) -> str:
    """The canonical URI botocore signs for ``path``: dot segments and empty segments removed
    (``botocore.utils.normalize_url_path``), then percent-encoded again (``/`` and ``~`` kept)."""
    if "//" in path or "/." in path:
        # what a connection id never produces: botocore's own normalisation, loaded on demand
        from botocore.utils import normalize_url_path

        path = normalize_url_path(path)
    return quote(path or "/", safe="/~")


# A new ``hashlib.sha256()`` looks the digest up in OpenSSL's provider store: a copy of an
# empty one does not (0.43 against 0.48 µs for a 220-byte body here). The HMAC is two SHA-256
# over the key's inner and outer pads (RFC 2104), the pads hashed once per signing key:
# ``hmac.new(key, msg, sha256).hexdigest()`` takes ~1.8 µs per signature here, the pads' copies
# ~0.75 µs (both warm, ``timeit``).
_SHA256 = hashlib.sha256()
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
Pads = tuple[Any, Any]  # hashlib sha256 objects fed the key's inner and outer pad
Stamp = tuple[str, str, str, str, Pads | None]


def sha256_hex(data: bytes) -> str:
    h = _SHA256.copy()
    h.update(data)
    return h.hexdigest()


def hmac_pads(key: bytes) -> Pads:
    """The SHA-256 states after the inner and outer pads of ``key`` (a 32-byte signing key)."""
    block = key.ljust(64, b"\0")  # keys longer than the 64-byte block would be hashed first
    if len(block) != 64:
        raise ValueError("an HMAC-SHA256 key of at most 64 bytes")
    return hashlib.sha256(block.translate(_IPAD)), hashlib.sha256(block.translate(_OPAD))


def hmac_hex(pads: Pads, msg: bytes) -> str:
    """``hmac.new(key, msg, hashlib.sha256).hexdigest()`` from ``hmac_pads(key)``."""
    inner = pads[0].copy()
    inner.update(msg)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return str(outer.hexdigest())


def plain_canonical_headers(host: str, amz_date: str, token: str) -> tuple[str, str]:
    """The canonical headers and signed-header list of a request with no headers of its own."""
    if token:
        return (f"host:{host}\nx-amz-date:{amz_date}\nx-amz-security-token:{token}\n",
                "host;x-amz-date;x-amz-security-token")
    return f"host:{host}\nx-amz-date:{amz_date}\n", "host;x-amz-date"


class PostPlan(NamedTuple):
    """:meth:`SigV4Signer.post_plan`: one second's shared pieces of a signed POST."""

    second: int
    canonical_headers: str  # canonical headers, blank line, signed headers, newline
    to_sign: str  # the string to sign up to the canonical request's hash
    pads: Pads | None
    head: str  # Host .. "Signature="
    tail: str  # [X-Amz-Security-Token], then the blank line


_NO_PLAN = PostPlan(-1, "", "", None, "", "")


class SigV4Signer:
    """Signs ``POST`` requests for ``service`` (``execute-api`` by default) like botocore's
    ``SigV4Auth`` does.

    ``credentials`` returns credentials with ``get_frozen_credentials()`` (botocore's, or
    :class:`.credentials.FrozenCredentials`; it is called at most once per second, so
    refreshable credentials keep working) or ``None``.
    """

    def __init__(
        self,
        credentials: Callable[[], Any],
        region: str,
        *,
        service: str = SERVICE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.region = region
        self.service = service
        self._credentials = credentials
        self._clock = clock
        self._second = -1
        # amz date, day, access key, token, HMAC pads of the signing key: for the current second
        self._stamp: Stamp = ("", "", "", "", None)
        self._keys: dict[tuple[str, str], Pads] = {}
        self._lock = threading.Lock()

    def _current(self) -> Stamp:
        return self.stamp(int(self._clock()))

    def stamp(self, now: int) -> Stamp:
        """``(amz date, day, access key, token, pads)`` for the second ``now`` (pads ``None``
        without credentials); the credentials are asked for once per second."""
        if now == self._second:
            return self._stamp
        with self._lock:
            source = self._credentials()
            frozen = source.get_frozen_credentials() if source is not None else None
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            day = amz_date[:8]
            stamp: Stamp = (amz_date, day, "", "", None)
            if frozen is not None:
                stamp = (amz_date, day, frozen.access_key, frozen.token or "",
                         self._signing_pads(frozen.secret_key, day))
            self._stamp, self._second = stamp, now
            return stamp

    def _signing_pads(self, secret: str, day: str) -> Pads:
        pads = self._keys.get((secret, day))
        if pads is None:
            k = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
            for part in (self.region, self.service, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            pads = hmac_pads(k)
            self._keys = {(secret, day): pads}  # one day, one secret: the old ones go
        return pads

    def scope(self, day: str) -> str:
        return f"{day}/{self.region}/{self.service}/aws4_request"

    def sign(self, host: str, path: str, body: bytes,
             headers: Mapping[str, str] | None = None) -> dict[str, str]:
        """Headers (Host, X-Amz-Date, [X-Amz-Security-Token], Authorization, then ``headers``)
        for a POST; ``headers`` (e.g. Content-Type, X-Amz-Target) are signed too, as botocore
        signs every header of its request.

        ``path`` is the URL path as sent (already percent-encoded). Raises
        :class:`NoCredentials` when there are none.
        """
        amz_date, day, access_key, token, pads = self._current()
        if pads is None:
            raise NoCredentials(f"no AWS credentials to sign the {self.service} request")
        canonical_path = canonical_uri(path)
        if headers:
            signing = {"host": host, "x-amz-date": amz_date}
            if token:
                signing["x-amz-security-token"] = token
            # botocore's canonical value: whitespace runs collapsed, ends trimmed
            signing.update((k.lower(), " ".join(v.split())) for k, v in headers.items())
            names = sorted(signing)
            canonical_headers = "".join(f"{n}:{signing[n]}\n" for n in names)
            signed = ";".join(names)
        else:
            canonical_headers, signed = plain_canonical_headers(host, amz_date, token)
        canonical = (f"POST\n{canonical_path}\n\n{canonical_headers}\n{signed}\n"
                     f"{sha256_hex(body)}")
        scope = self.scope(day)
        to_sign = f"{_ALGORITHM}\n{amz_date}\n{scope}\n{sha256_hex(canonical.encode())}"
        signature = hmac_hex(pads, to_sign.encode())
        out = {"Host": host, "X-Amz-Date": amz_date,
               "Authorization": f"{_ALGORITHM} Credential={access_key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}"}
        if token:
            out["X-Amz-Security-Token"] = token
        if headers:
            out.update(headers)
        return out

    def post_plan(self, host: str, now: int) -> PostPlan:
        """What every ``POST`` to ``host`` without headers of its own (the @connections post)
        signed in the second ``now`` shares: :meth:`sign`'s canonical headers, string-to-sign
        prefix and HMAC key, and the request's head around the signature, in :meth:`sign`'s
        header order (Host, X-Amz-Date, Authorization, [X-Amz-Security-Token]). ``pads`` is
        ``None`` without credentials. See :meth:`SignedPoster.request`."""
        amz_date, day, access_key, token, pads = self.stamp(now)
        canonical_headers, signed = plain_canonical_headers(host, amz_date, token)
        scope = self.scope(day)
        return PostPlan(
            now, f"{canonical_headers}\n{signed}\n", f"{_ALGORITHM}\n{amz_date}\n{scope}\n", pads,
            f"Host: {host}\r\nX-Amz-Date: {amz_date}\r\nAuthorization: {_ALGORITHM} "
            f"Credential={access_key}/{scope}, SignedHeaders={signed}, Signature=",
            f"\r\nX-Amz-Security-Token: {token}\r\n\r\n" if token else "\r\n\r\n")


class NoCredentials(PipelineRuntimeError):
    """There are no AWS credentials to sign with."""


class Connection:
    """One keep-alive TCP (or TLS) connection; requests are written in one ``sendall``.

    (``http.client.HTTPConnection`` writes headers and body in two sends: two segments and two
    wake-ups of the server per post. Answers are read by :func:`.http_response.read_answer`.)
    """

    def __init__(self, host: str, port: int, context: ssl.SSLContext | None,
                 timeouts: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) -> None:
        connect_s, read_s = timeouts
        sock = socket.create_connection((host, port), timeout=connect_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=host)
            io_timeout(sock, read_s)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.idle_since = 0.0  # time.monotonic() when last put back in its pool

    def exchange(self, request: bytes) -> tuple[int, bytes, str | None, bool]:
        """Send one request; ``(status, body, x-amzn-ErrorType, reusable)``."""
        sock = self.sock
        try:
            sock.sendall(request)
            return read_answer(sock.recv, sock.recv(RECV_SIZE))
        except _KERNEL_TIMEOUT as exc:  # io_timeout's: what a Python timeout raises
            raise TimeoutError("timed out") from exc

    def close(self) -> None:
        self.sock.close()


# What a blocking socket's send or recv raises when SO_SNDTIMEO/SO_RCVTIMEO expires.
_KERNEL_TIMEOUT = BlockingIOError


def io_timeout(sock: socket.socket, seconds: float) -> None:
    """Bound each send and recv of ``sock`` to ``seconds``.

    For plain TCP on Linux (the twin's and the load test's ``http`` endpoints) the kernel
    does it (``SO_RCVTIMEO``/``SO_SNDTIMEO`` on a blocking socket): a post is then two system
    calls, ``send`` and ``recv``, where a Python timeout (``settimeout``) adds a ``poll`` before
    each, and each of the four releases and retakes the GIL, a thread hand-off when other
    threads wait for it (the reply pool's). TLS keeps ``settimeout``: on a blocking
    ``SSLSocket`` the ``ssl`` module retries a read that timed out, for ever. Either way a
    timeout raises ``TimeoutError`` (:meth:`Connection.exchange` turns ``EAGAIN`` into it)."""
    if sys.platform != "linux" or isinstance(sock, ssl.SSLSocket):
        sock.settimeout(seconds)
        return
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)


def request_bytes(path: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """``POST path`` with ``headers`` and ``body``: one buffer for :meth:`Connection.exchange`."""
    lines = [f"POST {path} HTTP/1.1", f"Content-Length: {len(body)}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def ca_bundle() -> str | None:
    """The CA bundle botocore verifies with (``botocore.httpsession.where``): certifi's when it
    is installed, else botocore's own ``cacert.pem`` (None without either: the system's).
    Found without importing ``botocore.httpsession``, which loads urllib3 and more (~165 ms of
    CPU here, on a container's first post over https)."""
    try:
        from certifi import where
    except ImportError:
        spec = importlib.util.find_spec("botocore")  # locates it, does not import it
        if spec is None or spec.origin is None:
            return None
        return os.path.join(os.path.dirname(spec.origin), "cacert.pem")
    return str(where())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One per process, on first use (loading the CA bundle takes ~20 ms): botocore's bundle."""
    return ssl.create_default_context(cafile=ca_bundle())


class ConnectionPool:
    """Keep-alive connections to one host, reused LIFO; at most ``maxsize`` kept idle.

    The idle list is used without a lock: ``list.pop`` and ``list.append`` are atomic, and a
    put that finds one connection too many closes one (the pool may hold one more per thread
    putting one back at the same instant, for that instant)."""

    def __init__(self, scheme: str, host: str, port: int | None, maxsize: int,
                 timeouts: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) -> None:
        if scheme not in ("http", "https"):
            raise PipelineRuntimeError(f"unsupported endpoint scheme {scheme!r}")
        self.host, self.maxsize, self.timeouts = host, maxsize, timeouts
        self.port = port or (443 if scheme == "https" else 80)
        self.opened = 0  # connections ever created (tests, diagnostics)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()  # for ``opened``
        self._tls = scheme == "https"

    def take(self) -> Connection | None:
        """The connection used last, unless idle too long (closed then), else ``None``."""
        idle = self._idle
        while idle:
            try:
                conn = idle.pop()
            except IndexError:  # another thread took the last one
                return None
            if time.monotonic() - conn.idle_since < IDLE_LIMIT_S:
                return conn
            conn.close()
        return None

    def new(self) -> Connection:
        """A new connection (raises ``OSError`` when the endpoint cannot be reached)."""
        with self._lock:
            self.opened += 1
        return Connection(self.host, self.port, _tls_context() if self._tls else None,
                          self.timeouts)

    def exchange(self, request: bytes) -> tuple[int, bytes, str | None, bool]:
        """Send ``request`` on the connection used last, else on a new one; the connection goes
        back to the pool when the answer allows it. An idle connection the server has closed
        meanwhile (:data:`_STALE`) is replaced by a new one once, which is not an attempt of
        the caller's retries. Raises ``OSError`` or :class:`HTTPException` (the connection
        closed) when there is no answer."""
        conn = self.take()
        if conn is not None:
            try:
                answer = conn.exchange(request)
            except _STALE:
                conn.close()
                conn = None
            except BaseException:
                conn.close()
                raise
        if conn is None:
            conn = self.new()
            try:
                answer = conn.exchange(request)
            except BaseException:
                conn.close()
                raise
        if answer[3]:
            self.put(conn)
        else:
            conn.close()
        return answer

    def put(self, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        idle = self._idle
        idle.append(conn)
        if len(idle) > self.maxsize:
            with contextlib.suppress(IndexError):  # another thread's take came first
                idle.pop().close()  # this one, or one put back at the same instant

    def close(self) -> None:
        idle = self._idle
        while idle:
            try:
                conn = idle.pop()
            except IndexError:
                return
            conn.close()


class SignedPoster:
    """``POST {endpoint}/@connections/{id}`` signed with SigV4; answers ``(status, code)``.

    Status 0 means no HTTP answer (connection refused/reset, timeout, no credentials); the
    code is then the exception's name. Thread-safe.
    """

    def __init__(
        self, endpoint_url: str, *, region: str, credentials: Callable[[], Any],
        maxsize: int = 48, clock: Callable[[], float] = time.time,
    ) -> None:
        url = urlsplit(endpoint_url)
        if not url.hostname:
            raise PipelineRuntimeError(f"invalid @connections endpoint {endpoint_url!r}")
        self._base = url.path.rstrip("/") + "/@connections/"
        self._host = host_header(url.scheme, url.hostname, url.port)
        self.pool = ConnectionPool(url.scheme, url.hostname, url.port, maxsize)
        self.signer = SigV4Signer(credentials, region, clock=clock)
        self._clock = clock
        self._plan = _NO_PLAN  # the second's, made by the first post of each second

    def request(self, connection_id: str, data: bytes) -> bytes:
        """The signed ``POST`` of ``data`` to ``connection_id``: the bytes ``request_bytes``
        makes of :meth:`SigV4Signer.sign`'s headers, built from the second's
        :class:`PostPlan` and the connection's cached request line and canonical path (two
        SHA-256 and an HMAC per post, nothing else computed twice). Raises
        :class:`NoCredentials` when there are none."""
        plan = self._plan
        now = int(self._clock())
        if plan[0] != now:
            self._plan = plan = self.signer.post_plan(self._host, now)
        _, canonical_headers, to_sign, pads, head, tail = plan
        if pads is None:
            raise NoCredentials("no AWS credentials to sign the execute-api request")
        line, canonical_prefix = _post_prefixes(self._base, connection_id)
        canonical = f"{canonical_prefix}{canonical_headers}{sha256_hex(data)}"
        signature = hmac_hex(pads, f"{to_sign}{sha256_hex(canonical.encode())}".encode())
        return f"{line}{len(data)}\r\n{head}{signature}{tail}".encode() + data

    def post_once(self, connection_id: str, data: bytes) -> tuple[int, str]:
        if not connection_id:
            return 400, "BadRequestException"  # boto3 refuses it too (min length 1)
        try:
            request = self.request(connection_id, data)
        except NoCredentials:
            return 0, "NoCredentialsError"
        try:
            status, body, code, _ = self.pool.exchange(request)
        except (OSError, HTTPException) as exc:
            return 0, type(exc).__name__
        if 200 <= status < 300:
            return status, ""
        return status, error_code(status, code, body)

    def close(self) -> None:
        self.pool.close()


# A connection is posted to many times (each of its frames' replies, each room message): its
# request line and canonical path are kept for the connections posted to most recently (signing
# and framing a post measured ~5 µs with them kept, ~10 µs with the two ``quote`` calls, same run).
@functools.lru_cache(maxsize=4096)
def _post_prefixes(base: str, connection_id: str) -> tuple[str, str]:
    """``("POST <path> HTTP/1.1\\r\\nContent-Length: ", "POST\\n<canonical path>\\n\\n")``."""
    path = base + quote(connection_id, safe="-._~")
    return f"POST {path} HTTP/1.1\r\nContent-Length: ", f"POST\n{canonical_uri(path)}\n\n"


def error_code(status: int, header: str | None, body: bytes) -> str:
    """The AWS error code as botocore's rest-json parser finds it: the ``x-amzn-ErrorType``
    header (before any ``:``), else the body's ``code``/``__type``, else the HTTP status."""
    code = (header or "").split(":", 1)[0].strip()
    if not code and body:
        import json

        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            code = str(parsed.get("code") or parsed.get("__type") or "")
    return code.rsplit("#", 1)[-1] if code else str(status)
