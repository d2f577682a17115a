"""IAM in front of the twin's AWS port, and the threaded server that serves it.

The port serves the twin's Kinesis (:mod:`pipeline.local.kinesis.wsgi`) and moto's WSGI app for
the other services. moto's ``ThreadedMotoServer`` builds its ``DomainDispatcherApplication``
inside its thread and offers no hook, so :class:`GuardedAwsServer` binds the same werkzeug
server itself (in the caller's thread: a busy port raises ``OSError`` instead of hanging) around
the router and the optional wrapper (the IAM middleware).
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, make_server

from pipeline.local import ACCEPT_BACKLOG
from pipeline.local.iam.access import AccessControl
from pipeline.local.iam.errors import denied_message
from pipeline.local.iam.requests import credential_of, denied_body, iam_request
from pipeline.local.kinesis.wsgi import KinesisRouter, read_body
from pipeline.local.moto_dispatch import RememberingDispatcher

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    out = {k[5:].replace("_", "-").title(): str(v) for k, v in environ.items()
           if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        out["Content-Type"] = str(environ["CONTENT_TYPE"])
    # Title-casing spells X-Amz-Target as expected; keep the canonical spelling for the others.
    if "Authorization" not in out and "HTTP_AUTHORIZATION" in environ:
        out["Authorization"] = str(environ["HTTP_AUTHORIZATION"])
    return out


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back so the app behind reads it again."""
    body = read_body(environ)
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
    environ["CONTENT_LENGTH"] = str(len(body))
    return bytes(body)


class IamMiddleware:
    """Refuse a function role's call its identity policy does not allow, as AWS would."""

    def __init__(self, app: WsgiApp, access: AccessControl,
                 secrets: Mapping[str, str] | None = None) -> None:
        self._app = app
        self._access = access
        self._secrets = dict(secrets or {})

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        headers = _headers(environ)
        query = str(environ.get("QUERY_STRING", ""))
        credential = credential_of(headers, query)
        caller = self._access.caller(credential.access_key) if credential else None
        if credential is None or caller is None:
            return self._app(environ, start_response)  # unsigned or an administrator's key
        body = _read_body(environ)
        request = iam_request(credential, headers, body, query, secrets=self._secrets)
        if request is None:
            return self._app(environ, start_response)
        for action, resource in request.checks:
            denial = self._access.check(caller, action, resource)
            if denial is not None:
                log.info("IAM: %s", denied_message(denial))
                status, extra, payload = denied_body(credential.service, request.protocol,
                                                     denied_message(denial))
                reason = "Forbidden" if status == 403 else "Bad Request"
                response_headers = [*extra.items(), ("Content-Length", str(len(payload)))]
                start_response(f"{status} {reason}", response_headers)
                return [payload]
        return self._app(environ, start_response)


class GuardedAwsServer:
    """The AWS port: Kinesis requests to ``kinesis``, the rest to moto's app, with an optional
    wrapper (IAM) around both."""

    def __init__(self, host: str, port: int, kinesis: WsgiApp,
                 wrap: Callable[[WsgiApp], WsgiApp] | None = None) -> None:
        self._host, self._port, self._wrap = host, port, wrap
        self._kinesis = kinesis
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> tuple[str, int]:
        """Bind (raises OSError if the port is taken) and serve in a daemon thread."""
        app: WsgiApp = KinesisRouter(self._kinesis, RememberingDispatcher())
        if self._wrap is not None:
            app = self._wrap(app)
        self._server = make_server(self._host, self._port, app, threaded=True,
                                   request_handler=MotoRequestHandler)
        self._server.socket.listen(ACCEPT_BACKLOG)  # werkzeug listens with 128: raise it
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="moto-server")
        self._thread.start()
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
