"""IAM in front of the twin's AWS port, and the server that serves it.

The port serves the twin's Kinesis (:mod:`pipeline.local.kinesis.wsgi`), DynamoDB through moto's
in-process request path (:mod:`pipeline.local.dynamodb_port`) and moto's WSGI app for the other
services (its request dispatcher, :mod:`pipeline.local.moto_dispatch`), with the
optional wrapper (the IAM middleware) around both. :class:`GuardedAwsServer` serves them with
:class:`~pipeline.local.wsgi_server.WsgiServer`: HTTP/1.1 keep-alive on aiohttp, in a daemon
thread, bound in the caller's thread (a busy port raises ``OSError`` instead of hanging). Not
moto's ``ThreadedMotoServer`` (it builds its dispatcher inside its thread and offers no hook) nor
werkzeug's server it runs (``Connection: close`` on every answer: each SDK call was a new
connection and a new thread).

The apps run on the server's loop thread, one request at a time, except the calls that wait
inside moto (:func:`may_wait`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from pipeline.local.dynamodb_port import DynamoDbPort
from pipeline.local.iam.access import AccessControl
from pipeline.local.iam.errors import denied_message
from pipeline.local.iam.requests import credential_of, denied_body, iam_request
from pipeline.local.kinesis.wsgi import MAX_BODY, KinesisRouter, read_body
from pipeline.local.moto_dispatch import RememberingDispatcher
from pipeline.local.wsgi_server import WsgiServer, environ_headers

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


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
        headers = environ_headers(environ)
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


_SQS_RECEIVE_TARGET = "AmazonSQS.ReceiveMessage"  # SQS's JSON protocol
_FORM = "application/x-www-form-urlencoded"


def may_wait(environ: Mapping[str, Any], body: bytes) -> bool:
    """Whether a request may wait inside the app: SQS ``ReceiveMessage``, by either protocol
    (JSON: its ``X-Amz-Target``; query: ``Action=ReceiveMessage`` in the query string or the form
    body).

    moto's long poll blocks the calling thread: ``SQSBackend.receive_message`` loops until a
    message is visible or ``WaitTimeSeconds`` (else the queue's ``ReceiveMessageWaitTimeSeconds``,
    up to 20 s) has passed, each turn in ``Queue.wait_for_messages(1)`` (a ``Condition.wait_for``
    that ``SendMessage`` notifies). Run on the server's loop it would stall every other request on
    the port, the ``SendMessage`` that would end it among them, so the server runs it in a thread
    of its own. Nothing else the port serves waits: DynamoDB, Secrets Manager and the rest of SQS
    answer at once, and the twin's Kinesis has no ``SubscribeToShard`` (its ``GetRecords`` never
    waits; the mappings read in process).
    """
    if environ.get("HTTP_X_AMZ_TARGET") == _SQS_RECEIVE_TARGET:
        return True
    query = str(environ.get("QUERY_STRING", ""))
    if "ReceiveMessage" in query and ("Action", "ReceiveMessage") in parse_qsl(query):
        return True
    content_type = str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()
    return (content_type == _FORM and b"ReceiveMessage" in body
            and ("Action", "ReceiveMessage") in parse_qsl(body.decode("latin-1")))


class GuardedAwsServer:
    """The AWS port: Kinesis requests to ``kinesis``, the rest to moto's app, with an optional
    wrapper (IAM) around both."""

    def __init__(self, host: str, port: int, kinesis: WsgiApp,
                 wrap: Callable[[WsgiApp], WsgiApp] | None = None) -> None:
        self._host, self._port, self._wrap = host, port, wrap
        self._kinesis = kinesis
        self._server: WsgiServer | None = None

    def start(self) -> tuple[str, int]:
        """Bind (raises OSError if the port is taken) and serve in a daemon thread."""
        app: WsgiApp = KinesisRouter(self._kinesis, DynamoDbPort(RememberingDispatcher()))
        if self._wrap is not None:
            app = self._wrap(app)
        # The largest body the Kinesis router reads (the werkzeug server read any); AWS's own
        # limits are far below it (DynamoDB's BatchWriteItem 16 MB, Kinesis's PutRecords 10 MiB).
        server = WsgiServer(self._host, self._port, app, blocking=may_wait, max_body=MAX_BODY,
                            name="aws-port")
        address = server.start()
        self._server = server
        return address

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
