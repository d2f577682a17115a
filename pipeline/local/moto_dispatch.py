"""moto's request dispatcher with its host -> backend answer remembered.

``DomainDispatcherApplication.get_backend_for_host`` lists moto's package folder on disk
(``moto.backends.list_of_moto_modules``: an ``os.listdir`` and an ``isdir`` per entry, ~170
entries) on every request before it tries its URL patterns. The answer depends only on the host
and on the installed moto, so it is kept per host: during a storm of 1,000 ``$connect`` roster
puts that listing was a third of the in-process DynamoDB call's time (py-spy). Nothing of moto
is patched: this is a subclass that overrides one method and calls the original on a miss.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from moto.backends import get_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from pipeline.aws.limits import ACCOUNT_ID, REGION

HOSTS_REMEMBERED = 256  # hosts come from request headers: bounded, a stranger cannot grow it


class RememberingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher; ``get_backend_for_host`` is computed once per host."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._backends: dict[str | None, Any] = {}
        self._backends_lock = threading.Lock()

    def get_backend_for_host(self, host: str | None) -> Any:
        try:
            return self._backends[host]
        except KeyError:
            pass
        backend = super().get_backend_for_host(host)
        with self._backends_lock:
            if len(self._backends) < HOSTS_REMEMBERED:
                self._backends[host] = backend
        return backend


# --- moto's in-process request path --------------------------------------------------------------
_handlers: dict[str, Callable[[Any, str, Any], Any]] = {}


def moto_handler(service: str) -> Callable[[Any, str, Any], Any]:
    """moto's URL handler for ``service``'s regional endpoint: what its server reaches through
    werkzeug and Flask, and ``mock_aws`` through ``normalize_request`` (looked up once)."""
    handler = _handlers.get(service)
    if handler is None:
        url = service_endpoint(service)
        urls = get_backend(service)[ACCOUNT_ID][REGION].urls  # type: ignore[call-overload]
        handler = next(h for pattern, h in urls.items() if re.match(pattern, url))
        _handlers[service] = handler
    return handler


def service_endpoint(service: str) -> str:
    return f"https://{service}.{REGION}.amazonaws.com/"


INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,37})")


def plain_value(kind: str, value: Any) -> bool:
    """A DynamoDB AttributeValue the twin's direct writes take: a string, an integer, a boolean
    or null (moto stores any other as its request path would have to convert it)."""
    if kind == "S":
        return isinstance(value, str)
    if kind == "N":
        return isinstance(value, str) and INTEGER.fullmatch(value) is not None
    if kind == "BOOL":
        return isinstance(value, bool)
    return kind == "NULL" and value is True


def plain_item(attrs: Any) -> bool:
    """An item (or key) of the twin's direct writes: named attributes, each one plain value."""
    return isinstance(attrs, dict) and bool(attrs) and all(
        isinstance(k, str) and k and isinstance(v, dict) and len(v) == 1
        and plain_value(*next(iter(v.items()))) for k, v in attrs.items())
