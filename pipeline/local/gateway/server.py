"""The aiohttp server around :class:`GatewayProtocol`: WebSocket clients and @connections, one port.

Close paths and the codes ``$disconnect`` reports (``$context.disconnectStatusCode``): the client's
own close code (1005 when its close frame has none), 1006 when the network drops, 1001 for idle
timeout, maximum connection duration and server stop, 1000 for DELETE @connections, 1009 for a
message over 128 KB, 1007 for invalid UTF-8, 1003 for a binary frame (the API declares no binary
media types), 1009 for a single frame over 32 KB and 1002 for an unmasked one (``patches/aiohttp_frames.py``),
1002 for other protocol errors (aiohttp's reader). Every path delivers
``$disconnect`` exactly once, best effort (its failure is only logged, as AWS:
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field

import orjson
from aiohttp import WSMsgType, web

from pipeline.aws.errors import AUTHORIZER_UNAUTHORIZED
from pipeline.aws.limits import INTEGRATION_TIMEOUT_S
from pipeline.local import ACCEPT_BACKLOG, vtl
from pipeline.local.errors import FunctionError
from pipeline.local.gateway import AwsResponse, GatewayLimits, GatewayRules, IntegrationBackend
from pipeline.local.gateway.misses import MissLog
from pipeline.local.gateway.mock import MOCK_SERVICE, mock_response
from pipeline.local.gateway.model import ApiModel
from pipeline.local.gateway.protocol import (
    INTERNAL_ERROR,
    ClientConnection,
    GatewayProtocol,
    IntegrationCall,
    Reply,
    integration_failed,
    is_well_formed_id,
)
from pipeline.local.gateway.quotas import LIMIT_EXCEEDED, THROTTLED_MESSAGE, GatewayQuotas
from pipeline.local.iam.gateway_access import GatewayAccess
from pipeline.local.patches.aiohttp_frames import FrameLimitedWebSocket as _WebSocket
from pipeline.names import TWIN_HOST, TWIN_PORT

LOG = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_TOO_BIG = 1009
STOP_DEADLINE_S = 10.0
AUTHORIZER_TIMEOUT_S = float(INTEGRATION_TIMEOUT_S)
DEFAULT_LIMITS = GatewayLimits()
DEFAULT_RULES = GatewayRules()


@dataclass(eq=False)
class _Client:
    conn: ClientConnection
    ws: web.WebSocketResponse
    server_code: int | None = None  # set when the gateway closes
    transport: asyncio.Transport | None = None  # to drop a client that stopped reading
    client_code: int | None = None  # set when the client's close frame arrives
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def closing(self) -> bool:
        return self.server_code is not None or self.client_code is not None or self.ws.closed


def _too_big(text: str, limit: int) -> bool:
    """Whether a text message is over the 128 KB payload quota, as UTF-8 on the wire.

    aiohttp is given one byte of slack (its own check refuses a message *equal* to its limit)
    and checks a permessage-deflate message only after inflating it, so the exact quota is here.
    """
    return len(text) > limit // 4 and len(text.encode()) > limit


def _aws_error(status: int, error_type: str, message: str) -> web.Response:
    """An error in the API Gateway management API wire format (boto3 reads x-amzn-ErrorType)."""
    return web.Response(status=status, body=orjson.dumps({"message": message}),
                        content_type="application/json",
                        headers={"x-amzn-ErrorType": error_type})


class Gateway:
    """API Gateway WebSocket API stage on one local port."""

    def __init__(self, api: ApiModel, backend: IntegrationBackend, *, stage: str,
                 host: str = TWIN_HOST, port: int = TWIN_PORT,
                 limits: GatewayLimits = DEFAULT_LIMITS,
                 access: GatewayAccess | None = None,
                 rules: GatewayRules = DEFAULT_RULES,
                 quotas: GatewayQuotas | None = None) -> None:
        self.api = api
        self.rules = rules
        # Account quotas (gateway/quotas.py); None: none enforced, no added latency.
        self.quotas = quotas
        self._connect_quota = quotas.connect_quota() if quotas else None
        self._connections_quota = quotas.connections_quota() if quotas else None
        self._connections_delay_s = quotas.connections_latency_ms / 1000 if quotas else 0.0
        self._access = access  # IAM: SigV4 $connect and @connections (None: not checked)
        self.stage = stage
        self.host = host
        self.port = port
        self.limits = limits
        self._backend = backend
        self._protocol = GatewayProtocol(
            api, selection_rule=rules.integration_response_selection)
        self._misses = MissLog(stage, api.routes)
        self._clients: dict[str, _Client] = {}
        self._handlers: set[_Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._socket: socket.socket | None = None
        # The twin's own plain-HTTP routes (demo page, client module, OIDC issuer:
        # pipeline/local/web.py), exact paths registered before the API's; set before start().
        self.extra_routes: list[web.RouteDef] = []

    def replace_api(self, api: ApiModel) -> None:
        """A redeployed stage (the twin's reload of a re-synthesized template): the next frame
        is routed by *api*; open connections stay open, as on AWS."""
        self.api = api
        self._protocol = GatewayProtocol(  # stateless: connections keep their own state
            api, selection_rule=self.rules.integration_response_selection)
        self._misses = MissLog(self.stage, api.routes)

    @property
    def connection_ids(self) -> list[str]:
        """The ids of the open connections."""
        return list(self._clients)

    def reserve(self) -> int:
        """Bind the port without accepting connections yet; returns it (port 0 picks a free one).

        The twin needs the port before the functions start (their ``CONNECTIONS_ENDPOINT_URL``)
        but must not accept a client before the mappings read the stream: a bound socket that
        is not listening refuses connections, so wait-for-port scripts keep waiting.
        """
        if self._socket is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self.port))
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            self._socket = sock
            self.port = int(sock.getsockname()[1])
        return self.port

    async def start(self) -> int:
        """Listen and serve on the reserved port (reserving it first if needed); returns it."""
        self.reserve()
        assert self._socket is not None
        app = web.Application(client_max_size=4 * self.limits.max_message_bytes)
        app.add_routes(self.extra_routes)
        app.router.add_get("/{stage}", self._websocket)
        app.router.add_route("*", "/{stage}/@connections/{connection_id}", self._connections)
        app.router.add_route("*", "/{tail:.*}", self._forbidden)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.SockSite(self._runner, self._socket, backlog=ACCEPT_BACKLOG)
        await site.start()
        return self.port

    async def stop(self) -> None:
        """Close every client (1001 going away), deliver their $disconnect, stop listening."""
        clients = list(self._handlers)
        for client in clients:
            self._close_later(client, CLOSE_GOING_AWAY, b"Going away")
        if clients:
            waits = [asyncio.ensure_future(c.done.wait()) for c in clients]
            _, pending = await asyncio.wait(waits, timeout=STOP_DEADLINE_S)
            for task in pending:
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # --- WebSocket clients ----------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["stage"] != self.stage:
            return self._missed(request)
        # aiohttp refuses a message whose size *equals* max_msg_size; AWS accepts 128 KB itself.
        ws = _WebSocket(frame_bytes=self.limits.frame_bytes,
                        max_msg_size=self.limits.max_message_bytes + 1, autoping=True)
        if not ws.can_prepare(request).ok:
            # Checked before $connect runs, so a plain GET never writes the roster.
            return _aws_error(426, "UpgradeRequired", "Upgrade Required")
        if self._connect_quota is not None and not self._connect_quota.allow():
            return _aws_error(429, LIMIT_EXCEEDED, THROTTLED_MESSAGE)  # new connections/s
        conn = self._protocol.open(
            source_ip=request.remote or "", user_agent=request.headers.get("User-Agent", ""),
            domain_name=request.host, headers=dict(request.headers), query=dict(request.query))
        refused = self._verify_iam(request)
        if refused is None:
            refused = await self._authorize(conn)
        if refused is not None:
            return refused
        # $connect runs before the upgrade completes. A template that cannot render refuses it.
        # What a failed non-proxy integration (the roster's PutItem) does is not settled: the
        # route-keys page says the connection "will not be made"
        # (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html),
        # users report that a non-proxy $connect integration answering 4xx still connects.
        # GatewayRules.connect_failure picks one (default: refuse, as the stack declares it:
        # its $connect answers only /200/; docs/fidelity.md "Unverified on AWS").
        try:
            call = self._protocol.connect(conn)
        except vtl.VtlError as exc:
            LOG.warning("$connect template failed: %s", exc)
            return _aws_error(500, "InternalServerErrorException", INTERNAL_ERROR)
        if call is not None and self._execute(call) is None:
            if self.rules.connect_failure == "refuse":
                LOG.warning("$connect integration failed for %s: connection refused (500; "
                            "--connect-failure accept connects anyway)", conn.connection_id)
                return _aws_error(500, "InternalServerErrorException", INTERNAL_ERROR)
            LOG.warning("$connect integration failed for %s; connecting anyway "
                        "(connect_failure=accept)", conn.connection_id)
        try:
            await ws.prepare(request)
        except Exception:  # the peer went away during the upgrade: $connect ran, so disconnect
            call = self._protocol.disconnect(conn, CLOSE_ABNORMAL)
            if call is not None:
                self._execute(call)
            raise
        client = _Client(conn, ws, transport=request.transport)
        self._clients[conn.connection_id] = client
        self._handlers.add(client)
        try:
            await self._serve(client)
        finally:
            self._clients.pop(conn.connection_id, None)
            self._disconnect(client)
            self._handlers.discard(client)
        return ws

    def _verify_iam(self, request: web.Request) -> web.Response | None:
        """``AWS_IAM`` on $connect: a valid SigV4-presigned URL, else 403 as AWS answers."""
        route = self.api.route("$connect")
        if self._access is None or route is None or route.authorization_type != "AWS_IAM":
            return None
        refusal = self._access.verify_connect(
            method=request.method, host=request.host, path=request.rel_url.raw_path,
            raw_query=request.rel_url.raw_query_string, headers=request.headers)
        if refusal is None:
            return None
        return _aws_error(refusal.status, refusal.error_type, refusal.message)

    async def _authorize(self, conn: ClientConnection) -> web.Response | None:
        """Run the $connect Lambda authorizer; a refusal response, or None to go on."""
        try:
            call = self._protocol.authorizer(conn)
        except vtl.VtlError as exc:
            LOG.warning("$connect authorizer: %s", exc)
            return _aws_error(500, "InternalServerErrorException", INTERNAL_ERROR)
        if call is None:
            return None
        missing = self._protocol.missing_identity(conn)
        if missing:  # API Gateway's own 401: the function is never invoked (identity.py)
            LOG.info("$connect refused (401): identity source %s missing or empty",
                     ", ".join(missing))
            return _aws_error(401, "UnauthorizedException", "Unauthorized")
        try:
            result = await asyncio.wait_for(
                self._backend.invoke_function(call.function_arn, call.event),
                AUTHORIZER_TIMEOUT_S)
        except FunctionError as exc:
            # A function error "Unauthorized" is API Gateway's 401; any other failure a 500.
            if exc.error_message == AUTHORIZER_UNAUTHORIZED:
                return _aws_error(401, "UnauthorizedException", "Unauthorized")
            LOG.warning("$connect authorizer failed: %r", exc)
            return _aws_error(500, "InternalServerErrorException", INTERNAL_ERROR)
        except Exception as exc:  # a timeout, or the functions not running
            LOG.warning("$connect authorizer failed: %r", exc)
            return _aws_error(500, "InternalServerErrorException", INTERNAL_ERROR)
        status = self._protocol.authorized(conn, result)
        if status is None:
            return None
        if status == 403:
            return _aws_error(403, "ForbiddenException", "Forbidden")
        return _aws_error(500, "InternalServerErrorException", INTERNAL_ERROR)

    async def _serve(self, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        limits = self.limits
        end_of_life = loop.time() + limits.max_connection_s
        idle = [loop.time() + limits.idle_timeout_s]  # the idle deadline, moved by each frame

        # One timer per connection, re-armed when it fires early, instead of a receive timeout
        # armed and cancelled per frame: at the idle or lifetime deadline the connection is closed
        # 1001 from here and the receive below ends (CLOSING/CLOSED).
        timer: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal timer
            deadline = min(idle[0], end_of_life)
            if loop.time() >= deadline:
                self._close_later(client, CLOSE_GOING_AWAY, b"Going away")
            else:
                timer = loop.call_at(deadline, check)

        timer = loop.call_at(min(idle[0], end_of_life), check)
        try:
            await self._receive_frames(client, idle)
        finally:
            if timer is not None:
                timer.cancel()

    async def _receive_frames(self, client: _Client, idle: list[float]) -> None:
        loop = asyncio.get_running_loop()
        ws, limits = client.ws, self.limits
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                if _too_big(msg.data, limits.max_message_bytes):
                    await self._close(client, CLOSE_TOO_BIG, b"Message too big")
                    return
                idle[0] = loop.time() + limits.idle_timeout_s
                await self._frame(client, msg.data)
            elif msg.type is WSMsgType.BINARY:
                await self._close(client, CLOSE_UNSUPPORTED, b"Binary frames are not supported")
                return
            elif msg.type is WSMsgType.CLOSE:
                client.client_code = int(msg.data) if msg.data else CLOSE_NO_STATUS
                return
            elif msg.type is WSMsgType.ERROR:
                # aiohttp closed already: 1009 (too big), 1007 (invalid UTF-8) or a lost peer.
                code = getattr(msg.data, "code", None)
                if client.server_code is None and code not in (None, CLOSE_NORMAL):
                    client.server_code = code
                return
            else:  # CLOSING / CLOSED: closed by us from another task, or the peer vanished
                return

    async def _frame(self, client: _Client, text: str) -> None:
        outcome = self._protocol.message(client.conn, text)
        if isinstance(outcome, IntegrationCall):
            # Two-way routes answer with their integration response (responses.py); one-way
            # routes send only the error frame, on failure.
            response = self._respond(outcome)
            answer = (self._protocol.answer(outcome, None) if response is None else
                      self._protocol.answer(outcome, response.status, response.body,
                                            response.error_type))
            if answer is not None:
                await self._send(client, answer.text)
        elif isinstance(outcome, Reply):
            await self._send(client, outcome.text)

    async def _send(self, client: _Client, data: str | bytes) -> bool:
        if client.closing:
            return False
        # A send waits only when the transport's buffer is past its high-water mark (the client
        # stopped reading): while this frame fits below it, nothing can wait, so no timer is armed
        # (a timer armed and cancelled per frame was ~5 % of the twin's loop at 2,000 frames/s).
        # Else asyncio.timeout, not wait_for (which wraps the send in a new Task).
        transport = client.transport
        try:
            if transport is not None and (transport.get_write_buffer_size() + _MAX_FRAME_OVERHEAD
                                          + _UTF8_MAX * len(data)
                                          < transport.get_write_buffer_limits()[1]):
                await _send_frame(client.ws, data)
                return True
            async with asyncio.timeout(self.limits.send_timeout_s):
                await _send_frame(client.ws, data)
        except TimeoutError:  # the client stopped reading and its buffers are full: drop it
            LOG.warning("dropping %s: a send was blocked for %.1f s", client.conn.connection_id,
                        self.limits.send_timeout_s)
            if client.transport is not None:
                client.transport.abort()
            return False
        except (ConnectionError, RuntimeError):
            return False
        return True

    def _respond(self, call: IntegrationCall) -> AwsResponse | None:
        """Run one integration; its response, AWS errors included (None: the backend raised)."""
        if call.service == MOCK_SERVICE:  # no backend: the rendered template is the answer
            return mock_response(call.body)
        try:
            response = self._backend.call_aws(call.service, call.action, call.body,
                                              call.credentials_arn, call.content_type)
        except Exception:
            LOG.exception("integration %s:%s raised", call.service, call.action)
            return None
        if integration_failed(response.status, response.error_type):
            LOG.info("integration %s:%s failed: %s %s", call.service, call.action,
                     response.status, response.error_type)
        return response

    def _execute(self, call: IntegrationCall) -> AwsResponse | None:
        """Run one integration; None when it failed (AWS error, or the backend raised)."""
        response = self._respond(call)
        if response is None or integration_failed(response.status, response.error_type):
            return None
        return response

    def _disconnect(self, client: _Client) -> None:
        code = client.server_code or client.client_code or CLOSE_ABNORMAL
        call = self._protocol.disconnect(client.conn, code)
        if call is not None:
            self._execute(call)
        client.done.set()

    async def _close(self, client: _Client, code: int, message: bytes) -> None:
        if client.server_code is None and client.client_code is None:
            client.server_code = code
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.ws.close(code=code, message=message)

    def _close_later(self, client: _Client, code: int, message: bytes) -> None:
        if client.server_code is None and client.client_code is None:
            client.server_code = code
        task = asyncio.ensure_future(self._close(client, code, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- @connections ---------------------------------------------------------------------
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html

    async def _connections(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["stage"] != self.stage:
            return self._missed(request)
        connection_id = request.match_info["connection_id"]
        if self._connections_delay_s:  # the in-Region round trip (gateway/quotas.py)
            await asyncio.sleep(self._connections_delay_s)
        if self._connections_quota is not None and not self._connections_quota.allow():
            return _aws_error(429, LIMIT_EXCEEDED, THROTTLED_MESSAGE)
        if request.method not in ("POST", "GET", "DELETE"):
            return _aws_error(403, "ForbiddenException", "Forbidden")
        if self._access is not None:  # IAM before the connection is looked up, as in AWS
            refusal = self._access.manage_connections(
                method=request.method, connection_id=connection_id, headers=request.headers)
            if refusal is not None:
                return _aws_error(refusal.status, refusal.error_type, refusal.message)
        if not is_well_formed_id(connection_id):
            return _aws_error(400, "BadRequestException", f"Invalid connectionId: {connection_id}")
        client = self._clients.get(connection_id)
        if client is None or client.closing:
            return _aws_error(410, "GoneException", "")
        if request.method == "GET":
            return web.Response(body=client.conn.describe(), content_type="application/json")
        if request.method == "DELETE":
            self._close_later(client, CLOSE_NORMAL, b"")
            return web.Response(status=204)
        limit = self.limits.max_message_bytes
        if (request.content_length or 0) > limit:
            return _aws_error(413, "PayloadTooLargeException", "Message too long")
        data = await request.read()
        if len(data) > limit:
            return _aws_error(413, "PayloadTooLargeException", "Message too long")
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        if not await self._send(client, payload):
            return _aws_error(410, "GoneException", "")
        return web.Response(status=200)

    async def _forbidden(self, request: web.Request) -> web.StreamResponse:
        return self._missed(request)

    def _missed(self, request: web.Request) -> web.StreamResponse:
        """A path outside the stage: AWS's 403, and one (rate-limited) line saying what is served."""
        line = self._misses.miss(request.method, request.path, f"ws://{self.host}:{self.port}")
        if line is not None:
            LOG.warning("%s", line)
        return _aws_error(403, "ForbiddenException", "Forbidden")


_UTF8_MAX = 4  # bytes a character may take in UTF-8 (a frame's length bound from its str length)
_MAX_FRAME_OVERHEAD = 14  # a server frame's header: 2 + 8 length bytes (+ 4 if masked)


async def _send_frame(ws: web.WebSocketResponse, data: str | bytes) -> None:
    if isinstance(data, str):
        await ws.send_str(data)
    else:
        await ws.send_bytes(data)
