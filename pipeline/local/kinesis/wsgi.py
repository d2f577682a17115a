"""Kinesis on the twin's AWS port: a WSGI app, and the router that sends it Kinesis requests.

:class:`KinesisRouter` looks at each request's ``X-Amz-Target`` (``Kinesis_20131202.*``) or its
CBOR content type (only Kinesis speaks CBOR here) and hands it to :class:`KinesisApp`; every
other request goes to the wrapped app (moto's, for DynamoDB, SQS and Secrets Manager).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .responses import TARGET_PREFIX, KinesisResponses
from .wire import CBOR

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# The largest request body read (64 MiB); the AWS port's server refuses a longer one (413).
MAX_BODY = 64 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


def is_kinesis(environ: dict[str, Any]) -> bool:
    """Whether a request is for Kinesis: its target, or a CBOR body."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target.startswith(TARGET_PREFIX):
        return True
    return str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower() == CBOR


def read_body(environ: dict[str, Any]) -> bytes:
    """A WSGI request's body (at most 64 MiB), by Content-Length or to the end of its input."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if length > 0:
        return bytes(stream.read(min(length, MAX_BODY)))
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    return b""


class KinesisApp:
    """The Kinesis API as a WSGI app."""

    def __init__(self, responses: KinesisResponses) -> None:
        self.responses = responses

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        action = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target
        answer = self.responses.handle(action, read_body(environ),
                                       environ.get("CONTENT_TYPE"))
        start_response(f"{answer.status} {_REASONS.get(answer.status, 'Error')}",
                       answer.headers())
        return [answer.body]


class KinesisRouter:
    """Kinesis requests to :class:`KinesisApp`, the rest to ``other``."""

    def __init__(self, kinesis: WsgiApp, other: WsgiApp) -> None:
        self.kinesis, self.other = kinesis, other

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        app = self.kinesis if is_kinesis(environ) else self.other
        return app(environ, start_response)
