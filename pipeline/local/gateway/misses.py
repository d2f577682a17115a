"""Requests that miss the stage: what the twin's log says, at most once per interval.

API Gateway answers a wrong stage path (``/``, ``/prod`` on a ``dev`` API) with
``403 {"message":"Forbidden"}`` and nothing else; the twin answers the same, and also tells the
person at its console which stage and routes it serves. A flood of misses logs one line per
:data:`MISS_LOG_INTERVAL_S`, with the count of the misses it did not log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

MISS_LOG_INTERVAL_S = 10.0
BUILT_IN_ROUTES = ("$connect", "$disconnect", "$default")


def route_list(route_keys: Iterable[str]) -> str:
    """The routes in the order a person reads them: the built-in ones, then the rest sorted."""
    keys = set(route_keys)
    built_in = [k for k in BUILT_IN_ROUTES if k in keys]
    return ", ".join(built_in + sorted(keys - set(BUILT_IN_ROUTES)))


class MissLog:
    """Decides whether a miss is logged now and says what to log (no I/O)."""

    def __init__(self, stage: str, route_keys: Iterable[str], *,
                 interval_s: float = MISS_LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stage = stage
        self.routes = route_list(route_keys)
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._unlogged = 0

    def miss(self, method: str, path: str, base_url: str) -> str | None:
        """The line to log for this miss, or None while the last one is recent."""
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            self._unlogged += 1
            return None
        more = f" (+{self._unlogged} more since the last such line)" if self._unlogged else ""
        self._last, self._unlogged = now, 0
        return (f"403 Forbidden for {method} {path}: this twin serves stage {self.stage!r} at "
                f"{base_url}/{self.stage} (routes: {self.routes}){more}")
