"""The gateway's protocol logic, with no I/O: ids, route selection, $context, templates, errors.

The aiohttp server (``server.py``) feeds it connections and frames and executes what it returns.
Behaviour follows API Gateway WebSocket APIs:
https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-routes.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-mapping-template-reference.html
"""

from __future__ import annotations

import functools
import os
import re
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NewType

import orjson

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local import vtl
from pipeline.local.content_types import GATEWAY_DEFAULT
from pipeline.local.gateway.identity import identity_sources, missing_identity_sources
from pipeline.local.gateway.model import ApiModel, IntegrationResponse, Route
from pipeline.local.gateway.responses import render_response

ConnectionId = NewType("ConnectionId", str)

_ID_ALPHABET = string.ascii_letters + string.digits
# Ids look like AWS's ("L0SM9cOFvHcCIhw="): 16 base64 characters, the last one "=" padding.
# Ours avoid "+" and "/" so they never need URL escaping in an @connections path.
ID_LENGTH = 16
_SPECIAL_ROUTES = frozenset({"$connect", "$disconnect"})

_AUTHORIZER_URI = re.compile(r"functions/(arn:[^/]+)/invocations$")

INTERNAL_ERROR = "Internal server error"
FORBIDDEN = "Forbidden"


# new_id maps bytes from os.urandom (the OS CSPRNG, as secrets uses) onto the 62 letters with
# one bytes.translate: byte b becomes letter b % 62, and bytes >= 248 (= 4 * 62) are dropped, so
# every letter is equally likely. ~0.6 µs an id, against ~10 µs for 15 secrets.choice calls.
_ID_TABLE = b"".join(_ID_ALPHABET[b % len(_ID_ALPHABET)].encode() for b in range(256))
_ID_REJECTED = bytes(range(4 * len(_ID_ALPHABET), 256))
_ID_RANDOM_BYTES = 24  # 15 letters needed; fewer survive with p ~ 2e-9 (then: draw again)


def new_id() -> str:
    """A fresh AWS-shaped id (connection, request, message): 15 random letters/digits and "="."""
    while True:
        letters = os.urandom(_ID_RANDOM_BYTES).translate(_ID_TABLE, _ID_REJECTED)
        if len(letters) >= ID_LENGTH - 1:
            return letters[:ID_LENGTH - 1].decode("ascii") + "="


def is_well_formed_id(value: str) -> bool:
    """Whether *value* has the shape of a connection id (else @connections answers 400)."""
    return (len(value) == ID_LENGTH and value.endswith("=")
            and all(c in _ID_ALPHABET or c in "+/_-" for c in value[:-1]))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def request_time(epoch_ms: int) -> str:
    """``$context.requestTime``: CLF-formatted (dd/MMM/yyyy:HH:mm:ss +0000)."""
    return _clf_second(epoch_ms // 1000)


@functools.lru_cache(maxsize=4)
def _clf_second(epoch_s: int) -> str:
    # Formatted once per second, not once per frame (the format has no sub-second part).
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def iso_time(epoch_ms: int) -> str:
    """ISO 8601 as the @connections GetConnection answer carries it."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass
class ClientConnection:
    """One client connection, as the gateway sees it."""

    connection_id: ConnectionId
    connected_at_ms: int
    source_ip: str
    user_agent: str
    domain_name: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    authorizer: Mapping[str, Any] | None = None
    last_active_ms: int = 0
    disconnect_claimed: bool = False

    def describe(self) -> bytes:
        """The @connections GetConnection body (camelCase on the wire, as botocore's model says)."""
        return orjson.dumps({
            "connectedAt": iso_time(self.connected_at_ms),
            "identity": {"sourceIp": self.source_ip, "userAgent": self.user_agent},
            "lastActiveAt": iso_time(self.last_active_ms or self.connected_at_ms),
        })


@dataclass(frozen=True)
class IntegrationCall:
    """One AWS action to execute for a request."""

    service: str
    action: str
    body: bytes
    credentials_arn: str | None
    route_key: str
    request_id: str
    # Two-way routes: the integration responses and the request's $context they render with.
    two_way: bool = False
    responses: tuple[IntegrationResponse, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    # The Content-Type header the integration request carries: its static request parameter,
    # else what API Gateway sends by default (content_types.GATEWAY_DEFAULT).
    content_type: str = GATEWAY_DEFAULT


@dataclass(frozen=True)
class Reply:
    """A frame the gateway itself sends to the client (an AWS error frame)."""

    text: str


@dataclass(frozen=True)
class AuthorizerCall:
    """The $connect Lambda REQUEST authorizer to invoke, with its event."""

    function_arn: str
    event: dict[str, Any]


def gateway_error_reply(message: str, connection_id: str, request_id: str) -> Reply:
    """The frame API Gateway sends when it cannot route or integrate a message."""
    return Reply(orjson.dumps(
        {"message": message, "connectionId": connection_id, "requestId": request_id}
    ).decode())


def integration_failed(status: int, error_type: str | None) -> bool:
    """Whether an AWS integration response counts as a failure (non-2xx or an error type)."""
    return error_type is not None or not 200 <= status < 300


class GatewayProtocol:
    """Route selection, $context and request templates for one API stage."""

    def __init__(self, api: ApiModel, *, clock_ms: Callable[[], int] = _now_ms,
                 selection_rule: str = "status") -> None:
        self.api = api
        self.selection_rule = selection_rule  # GatewayRules.integration_response_selection
        self._clock_ms = clock_ms
        expression = api.route_selection_expression
        prefix = "$request.body."
        if not expression.startswith(prefix):
            # Only body-based selection is supported; everything then goes to $default.
            self._selection_path: tuple[str, ...] = ()
        else:
            self._selection_path = tuple(expression[len(prefix):].split("."))
        self._selectable = {k for k in api.routes if k not in _SPECIAL_ROUTES}

    # --- connections ----------------------------------------------------------------------

    def open(self, *, source_ip: str, user_agent: str, domain_name: str,
             headers: Mapping[str, str] | None = None,
             query: Mapping[str, str] | None = None) -> ClientConnection:
        """A new connection (not yet accepted: run :meth:`connect` first)."""
        now = self._clock_ms()
        return ClientConnection(ConnectionId(new_id()), now, source_ip, user_agent, domain_name,
                          dict(headers or {}), dict(query or {}), last_active_ms=now)

    def connect(self, conn: ClientConnection) -> IntegrationCall | None:
        """The $connect integration call (None: no $connect integration, accept).

        Raises :class:`vtl.VtlError` when the template fails (the upgrade is then refused).
        """
        route = self.api.route("$connect")
        if route is None or route.integration is None:
            return None
        return self._call(conn, route, "CONNECT", body="", extra={})

    def authorizer(self, conn: ClientConnection) -> AuthorizerCall | None:
        """The $connect Lambda authorizer call (None: the route has no CUSTOM authorizer).

        Event shape: https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html
        """
        route = self.api.route("$connect")
        if route is None or route.authorization_type != "CUSTOM" or not route.authorizer_id:
            return None
        props = self.api.authorizers.get(route.authorizer_id, {})
        match = _AUTHORIZER_URI.search(str(props.get("AuthorizerUri", "")))
        if match is None:
            raise vtl.VtlRenderError(f"authorizer {route.authorizer_id}: unsupported URI")
        request_id = new_id()
        method_arn = (f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api.api_id}/"
                      f"{self.api.stage}/$connect")
        return AuthorizerCall(match.group(1), {
            "type": "REQUEST",
            "methodArn": method_arn,
            "headers": dict(conn.headers),
            "multiValueHeaders": {k: [v] for k, v in conn.headers.items()},
            "queryStringParameters": dict(conn.query),
            "multiValueQueryStringParameters": {k: [v] for k, v in conn.query.items()},
            "stageVariables": dict(self.api.stage_variables),
            "requestContext": self.context(conn, "$connect", "CONNECT", request_id, {}),
        })

    def missing_identity(self, conn: ClientConnection) -> tuple[str, ...]:
        """The $connect authorizer's identity sources *conn* lacks (``identity.py``): API
        Gateway then answers 401 without invoking the authorizer."""
        route = self.api.route("$connect")
        if route is None or route.authorization_type != "CUSTOM" or not route.authorizer_id:
            return ()
        props = self.api.authorizers.get(route.authorizer_id, {})
        return missing_identity_sources(
            identity_sources(props.get("IdentitySource")), headers=conn.headers,
            query=conn.query, stage_variables=self.api.stage_variables)

    def authorized(self, conn: ClientConnection, result: Any) -> int | None:
        """Apply the authorizer's answer: None when allowed, else the HTTP status refusing it.

        An Allow statement (and no Deny) admits; ``principalId`` and ``context`` become
        ``$context.authorizer``. A malformed answer is a 500, as in AWS.
        """
        if not isinstance(result, dict) or not isinstance(result.get("policyDocument"), dict):
            return 500
        statements = result["policyDocument"].get("Statement") or []
        if isinstance(statements, dict):
            statements = [statements]
        effects = {str(s.get("Effect")) for s in statements if isinstance(s, dict)}
        if "Deny" in effects or "Allow" not in effects:
            return 403
        context = result.get("context") or {}
        conn.authorizer = {**(context if isinstance(context, dict) else {}),
                           "principalId": str(result.get("principalId", ""))}
        return None

    def message(self, conn: ClientConnection, text: str) -> IntegrationCall | Reply | None:
        """What one client text frame does: an integration call, or an error frame."""
        conn.last_active_ms = self._clock_ms()
        route = self.api.route(self.select_route(text)) or self.api.route("$default")
        request_id = new_id()
        if route is None:
            return gateway_error_reply(FORBIDDEN, conn.connection_id, request_id)
        if route.integration is None:
            return None
        try:
            return self._call(conn, route, "MESSAGE", body=text, extra={"messageId": new_id()},
                              request_id=request_id)
        except vtl.VtlError:
            return gateway_error_reply(INTERNAL_ERROR, conn.connection_id, request_id)

    def answer(self, call: IntegrationCall, status: int | None, body: bytes = b"",
               error_type: str | None = None) -> Reply | None:
        """What the sender gets for a frame's integration result (status None: it raised).

        One-way routes: nothing on success, the error frame on failure. Two-way routes: the
        selected integration response's rendered template (see ``responses.py``), else the
        error frame.
        """
        if status is None:
            return gateway_error_reply(INTERNAL_ERROR, call.context.get("connectionId", ""),
                               call.request_id)
        if not call.two_way:
            if integration_failed(status, error_type):
                return gateway_error_reply(INTERNAL_ERROR, call.context.get("connectionId", ""),
                                   call.request_id)
            return None
        try:
            text = render_response(call.responses, status=status, body=body,
                                   context=call.context,
                                   stage_variables=self.api.stage_variables,
                                   rule=self.selection_rule)
        except vtl.VtlError:
            text = None
        if text is None:
            return gateway_error_reply(INTERNAL_ERROR, call.context.get("connectionId", ""),
                               call.request_id)
        return Reply(text)

    def disconnect(self, conn: ClientConnection, status_code: int, reason: str = "") -> (
            IntegrationCall | None):
        """The $disconnect call, at most once per connection (later calls return None)."""
        if conn.disconnect_claimed:
            return None
        conn.disconnect_claimed = True
        route = self.api.route("$disconnect")
        if route is None or route.integration is None:
            return None
        try:
            return self._call(conn, route, "DISCONNECT", body="", extra={
                "disconnectStatusCode": status_code, "disconnectReason": reason})
        except vtl.VtlError:
            return None  # best effort, as in AWS

    def select_route(self, text: str) -> str:
        """The route key ``$request.body.<path>`` selects; ``$default`` when nothing matches."""
        if not self._selection_path or not text.lstrip().startswith("{"):
            return "$default"
        try:
            value: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "$default"
        for key in self._selection_path:
            if not isinstance(value, dict):
                return "$default"
            value = value.get(key)
        if isinstance(value, str) and value in self._selectable:
            return value
        return "$default"

    # --- context and templates ------------------------------------------------------------

    def context(self, conn: ClientConnection, route_key: str, event_type: str, request_id: str,
                extra: Mapping[str, Any]) -> dict[str, Any]:
        """``$context`` for one request."""
        now = self._clock_ms()
        ctx: dict[str, Any] = {
            "apiId": self.api.api_id,
            "connectionId": conn.connection_id,
            "connectedAt": conn.connected_at_ms,
            "domainName": conn.domain_name,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
            "messageDirection": "IN",
            "requestId": request_id,
            "requestTime": request_time(now),
            "requestTimeEpoch": now,
            "routeKey": route_key,
            "stage": self.api.stage,
        }
        if conn.authorizer is not None:
            ctx["authorizer"] = dict(conn.authorizer)
        ctx.update(extra)
        return ctx

    def _call(self, conn: ClientConnection, route: Route, event_type: str, *, body: str,
              extra: Mapping[str, Any], request_id: str | None = None) -> IntegrationCall:
        integration = route.integration
        assert integration is not None
        request_id = request_id or new_id()
        template = integration.request_template
        context = self.context(conn, route.route_key, event_type, request_id, extra)

        def call(payload: str) -> IntegrationCall:
            assert integration is not None
            return IntegrationCall(integration.service, integration.action, payload.encode(),
                                   integration.credentials_arn, route.route_key, request_id,
                                   two_way=route.two_way, responses=integration.responses,
                                   context=context,
                                   content_type=integration.static_header("Content-Type")
                                   or GATEWAY_DEFAULT)

        if template is None:
            if integration.passthrough_behavior == "NEVER":
                # No template and passthrough NEVER: API Gateway rejects the request.
                raise vtl.VtlRenderError("no request template and passthrough is NEVER")
            return call(body)
        # $input.params only reads these (its copies are made when a template asks for all).
        params = {"header": conn.headers, "querystring": conn.query}
        return call(vtl.render(template, body=body, context=context,
                               stage_variables=self.api.stage_variables, params=params))


class FrameSizeScanner:
    """Follows the frame headers of one client's byte stream (RFC 6455 section 5.2).

    API Gateway caps a single frame at 32 KB and closes with 1009 when one is larger, while a
    message split into frames of at most 32 KB may reach 128 KB
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html).
    WebSocket libraries reassemble fragments before the application sees them, so the server
    shows every received chunk to this scanner first. It also fails an unmasked client frame
    (1002), which RFC 6455 section 5.1 requires and aiohttp does not check. It keeps only the
    current header (at most 14 bytes) and a count of payload bytes to skip, never the payload.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.close_code: int | None = None  # set at the first bad frame: 1009 or 1002
        self.reason = ""
        self._header = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> int | None:
        """Scan *data*; the offset just past the first bad frame's header, else None.

        After a violation the scanner ignores everything (the connection is being closed).
        """
        if self.close_code is not None:
            return None
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            need = self._header_length()
            take = min(need - len(self._header), end - pos)
            self._header += data[pos:pos + take]
            pos += take
            if len(self._header) < self._header_length():
                continue
            length, masked = self._payload_length(), bool(self._header[1] & 0x80)
            self._header.clear()
            if length > self.limit:
                self.close_code, self.reason = 1009, f"Frame size {length} exceeds {self.limit}"
                return pos
            if not masked:
                self.close_code, self.reason = 1002, "Client frames must be masked"
                return pos
            self._skip = length
        return None

    def _header_length(self) -> int:
        if len(self._header) < 2:
            return 2
        flag = self._header[1] & 0x7F
        extended = 2 if flag == 126 else 8 if flag == 127 else 0
        return 2 + extended + (4 if self._header[1] & 0x80 else 0)

    def _payload_length(self) -> int:
        flag = self._header[1] & 0x7F
        if flag == 126:
            return int.from_bytes(self._header[2:4], "big")
        if flag == 127:
            return int.from_bytes(self._header[2:10], "big")
        return flag
