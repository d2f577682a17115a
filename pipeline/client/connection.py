"""The asyncio client: one logical connection that survives API Gateway's limits.

Reconnects after a drop (capped exponential backoff, full jitter) and re-joins its rooms; pings
before the 10-minute idle timeout; replaces the connection before the 2-hour limit (the new one
is open, its rooms joined, before the old one is closed); passes the token as ``?token=``;
:meth:`Client.send_acked` follows the retry rule of docs/acks.md; a refused ``$connect`` (401/403) ends it
in state ``closed`` with reason ``unauthorized``, with no retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from pipeline.client.policy import (
    REFUSED_STATUSES,
    ClientOptions,
    ack_answer,
    backoff_delay,
    token_expired,
    track_rooms,
)
from pipeline.names import PING_ROUTE, WHOAMI_ROUTE

log = logging.getLogger(__name__)
TokenSource = str | Callable[[], str | Awaitable[str]] | None
Listener = Callable[[Any], None]
PING = orjson.dumps({"action": PING_ROUTE}).decode()
WHOAMI = orjson.dumps({"action": WHOAMI_ROUTE}).decode()


class ClientError(Exception):
    """Base of the client's errors."""


class Nacked(ClientError):
    """An acked frame was refused (``retryable`` False), or given up after its attempts."""

    def __init__(self, error: str, retryable: bool) -> None:
        super().__init__(error)
        self.error = error
        self.retryable = retryable


class ClientClosed(ClientError):
    """The client is closed (``reason``: ``client`` or ``unauthorized``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Client:
    """A logical connection; create it with :func:`connect`."""

    def __init__(self, url: str, token: TokenSource = None,
                 options: ClientOptions | None = None) -> None:
        self.url = url
        self.options = options or ClientOptions()
        self.state = "idle"
        self.reason = ""
        self.rooms: set[str] = set()
        self.attempts = 0  # connection attempts so far (dials)
        self._token = token
        self._listeners: dict[str, list[Listener]] = {"message": [], "state": []}
        self._messages: asyncio.Queue[Any] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._queue: list[str] = []
        self._dropped = asyncio.Event()
        self._lanes: dict[str, asyncio.Lock] = {}
        self._answers: dict[str, asyncio.Future[tuple[str, dict[str, Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._switching: ClientConnection | None = None  # a replacement waiting for "joined"
        self._waiting: set[str] = set()
        self._joined = asyncio.Event()
        self.connection_id: str | None = None  # the current connection's id, once asked (whoami)
        self._whoami: asyncio.Future[str] | None = None

    # --- public API ----------------------------------------------------------------------------

    def on(self, event: str, listener: Listener) -> None:
        """Call *listener* with each ``message`` (a decoded frame) or ``state`` ((state, reason))."""
        self._listeners[event].append(listener)

    async def send(self, frame: dict[str, Any] | str) -> bool:
        """Send a frame; queued while (re)connecting. False when closed or the queue is full."""
        text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        if isinstance(frame, dict):
            track_rooms(self.rooms, frame)
        if self.state == "closed":
            return False
        if self.state == "open" and self._ws is not None:
            try:
                await self._ws.send(text)
                return True
            except ConnectionClosed:
                pass  # dropped just now: keep the frame for the next connection
        if len(self._queue) >= self.options.max_queued:
            return False
        self._queue.append(text)
        return True

    async def send_acked(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send on an acked route and return the ack (docs/acks.md "The retry rule").

        Raises :class:`Nacked` on a non-retryable nack or after the last attempt.
        """
        route = str(frame.get("action"))
        if route not in self.options.ack_routes:
            raise ValueError(f"route {route!r} is not acked ({self.options.ack_routes})")
        lane = self._lanes.setdefault(route, asyncio.Lock())
        opts = self.options
        async with lane:  # stop-and-wait: one frame in flight per acked route
            error = "timeout"
            for attempt in range(opts.ack_attempts):
                if attempt:
                    await asyncio.sleep(backoff_delay(attempt, opts.ack_backoff_base_s,
                                                      opts.ack_backoff_cap_s))
                answer: asyncio.Future[tuple[str, dict[str, Any]]] = (
                    asyncio.get_running_loop().create_future())
                self._answers[route] = answer
                if not await self.send(frame):
                    raise ClientClosed(self.reason or "closed")
                try:
                    kind, reply = await asyncio.wait_for(answer, opts.ack_timeout_s)
                except TimeoutError:
                    error = "timeout"
                    continue
                finally:
                    self._answers.pop(route, None)
                if kind == "ack":
                    return reply
                error = str(reply.get("error", "nack"))
                if not reply.get("retryable"):
                    raise Nacked(error, retryable=False)
            raise Nacked(f"gave up after {opts.ack_attempts} attempts: {error}", retryable=True)

    async def whoami(self, timeout: float = 10.0) -> str:
        """The current connection's id, answered by the gateway itself (the ``whoami`` route:
        no stream record); also kept in :attr:`connection_id`."""
        self._whoami = asyncio.get_running_loop().create_future()
        await self.send(WHOAMI)
        return await asyncio.wait_for(self._whoami, timeout)

    async def recv(self, timeout: float | None = None) -> Any:
        """The next message frame (pongs and acks answered to :meth:`send_acked` excluded)."""
        return await asyncio.wait_for(self._messages.get(), timeout)

    async def wait_state(self, state: str, timeout: float = 10.0) -> None:
        """Wait until the client is in *state*."""
        async with asyncio.timeout(timeout):
            while self.state != state:
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        """Close for good (state ``closed``, reason ``client``)."""
        await self._finish("client")

    # --- connection ----------------------------------------------------------------------------

    def start(self) -> None:
        self._set_state("connecting")
        self._runner = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        failures = 0
        while self.state != "closed":
            ws, reason = await self._dial()
            if ws is None:
                if reason == "unauthorized":
                    await self._finish("unauthorized")
                    return
                self._set_state("reconnecting", reason)
                await asyncio.sleep(backoff_delay(failures, self.options.backoff_base_s,
                                                  self.options.backoff_cap_s))
                failures += 1
                continue
            failures = 0
            self._dropped.clear()
            await self._install(ws)
            await self._dropped.wait()
            if self.state != "closed":
                self._set_state("reconnecting", self.reason)
                await asyncio.sleep(backoff_delay(0, self.options.backoff_base_s,
                                                  self.options.backoff_cap_s))

    async def _dial(self) -> tuple[ClientConnection | None, str]:
        token = self._token
        if callable(token):
            try:
                value = token()
                token = await value if not isinstance(value, str) else value
            except Exception as exc:  # no token to present: as the browser module does
                log.warning("the token source failed: %r", exc)
                return None, "unauthorized"
        url = self.url
        if token:
            url += ("&" if "?" in url else "?") + "token=" + quote(token, safe="")
        self.attempts += 1
        try:
            ws = await ws_connect(url, open_timeout=self.options.open_timeout_s,
                                  ping_interval=None, max_size=None)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in REFUSED_STATUSES:
                return None, "unauthorized"
            return None, f"handshake refused ({status})"
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            if token and token_expired(token, time.time()):
                return None, "unauthorized"
            return None, f"unreachable ({type(exc).__name__})"
        return ws, ""

    async def _rejoin(self, ws: ClientConnection) -> set[str]:
        """Join *ws* to the rooms (those a queued frame will not join); the rooms joined."""
        flushed = {queued_join(text) for text in self._queue}  # joined by the flush
        rooms = {r for r in self.rooms if r not in flushed}
        for room in sorted(rooms):
            await ws.send(orjson.dumps({"action": "join", "room": room}).decode())
        return rooms

    async def _install(self, ws: ClientConnection, *, rejoined: bool = False) -> None:
        """Make *ws* the connection: rooms re-joined first, then the old one closed."""
        if not rejoined:
            await self._rejoin(ws)
            self._spawn(self._reader(ws))
        old, self._ws = self._ws, ws
        self._spawn(self._heartbeat(ws))
        self._spawn(self._rotate_later(ws))
        if old is not None:
            self._spawn(old.close(1000, "replaced"))
        self._set_state("open")
        queued, self._queue = self._queue, []
        for text in queued:
            await self.send(text)

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                self._receive(data, ws)
        except ConnectionClosed:
            pass
        if ws is self._ws and self._switching is not None:
            self._joined.set()  # dropped during a switch-over: the replacement takes over now
        elif ws is self._ws:  # not a replaced connection: the logical connection dropped
            code = ws.close_code
            self._ws = None
            self.reason = f"dropped ({code})"
            self._dropped.set()

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.options.ping_interval_s)  # the keepalive period itself
            if ws is not self._ws:
                return
            with contextlib.suppress(ConnectionClosed):
                await ws.send(PING)

    async def _rotate_later(self, ws: ClientConnection) -> None:
        await asyncio.sleep(self.options.max_connection_s)  # the connection's planned lifetime
        if ws is not self._ws or self.state == "closed":
            return
        new, reason = await self._dial()
        if new is None:
            log.info("replacing the connection failed (%s); it stays until it drops", reason)
            return
        # Switch once the new connection is in every room (its "joined" replies), so no room
        # message falls between the old one leaving and the new one joining; meanwhile both
        # receive (a message may arrive twice, never not at all).
        self._waiting = await self._rejoin(new)
        self._joined.clear()
        if not self._waiting:
            self._joined.set()
        self._switching = new
        self._spawn(self._reader(new))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._joined.wait(), self.options.ack_timeout_s)
        self._switching = None
        if new.state.name == "OPEN" and self.state != "closed":
            await self._install(new, rejoined=True)
        else:
            await new.close()

    def _receive(self, data: str | bytes, ws: ClientConnection | None = None) -> None:
        try:
            frame: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            frame = data
        if ws is not None and ws is self._switching and isinstance(frame, dict) \
                and frame.get("action") == "joined":
            self._waiting.discard(str(frame.get("room")))
            if not self._waiting:
                self._joined.set()
        if isinstance(frame, dict) and frame.get("action") == "pong":
            return
        if isinstance(frame, dict) and frame.get("action") == WHOAMI_ROUTE:
            self.connection_id = str(frame.get("connectionId"))
            if self._whoami is not None and not self._whoami.done():
                self._whoami.set_result(self.connection_id)
                return
        answer = ack_answer(frame)
        if answer is not None:
            future = self._answers.get(answer[0])
            if future is not None and not future.done():
                future.set_result((answer[1], frame))
                return
        self._messages.put_nowait(frame)
        self._emit("message", frame)

    # --- bookkeeping ---------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def wrapped() -> None:
            await coro

        task = asyncio.ensure_future(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit(self, event: str, value: Any) -> None:
        for listener in list(self._listeners[event]):
            try:
                listener(value)
            except Exception:
                log.exception("a %s listener failed", event)

    def _set_state(self, state: str, reason: str = "") -> None:
        if state == self.state and state != "reconnecting":
            return
        self.state, self.reason = state, reason
        self._changed.set()
        self._emit("state", (state, reason))

    async def _finish(self, reason: str) -> None:
        if self.state == "closed":
            return
        self._set_state("closed", reason)
        self._dropped.set()
        for future in self._answers.values():
            if not future.done():
                future.set_exception(ClientClosed(reason))
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close(1000, "client")
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None and self._runner is not asyncio.current_task():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner


def queued_join(text: str) -> str | None:
    """The room a queued frame joins, if it is a join."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    room = frame.get("room") if isinstance(frame, dict) and frame.get("action") == "join" else None
    return room if isinstance(room, str) else None


def connect(url: str, *, token: TokenSource = None, options: ClientOptions | None = None) -> Client:
    """A started :class:`Client` on *url* (``ws://`` or ``wss://``, without the token).

    Call it in a running event loop; ``await client.wait_state("open")`` to wait for the first
    connection.
    """
    client = Client(url, token, options)
    client.start()
    return client
