"""moto's request dispatcher with its host -> backend answer remembered.

``DomainDispatcherApplication.get_backend_for_host`` lists moto's package folder on disk
(``moto.backends.list_of_moto_modules``: an ``os.listdir`` and an ``isdir`` per entry, ~170
entries) on every request before it tries its URL patterns. The answer depends only on the host
and on the installed moto, so it is kept per host: during a storm of 1,000 ``$connect`` roster
puts that listing was a third of the in-process DynamoDB call's time (py-spy). Nothing of moto
is patched: this is a subclass that overrides one method and calls the original on a miss.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

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
