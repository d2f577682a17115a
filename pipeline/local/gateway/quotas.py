"""The account-level API Gateway quotas the twin enforces, and the @connections round trip.

https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
- Every API Gateway request, ``@connections`` calls included, counts against the account's
  throttle quota: 10,000 requests per second per Region, burst 5,000. Beyond it API Gateway
  answers 429 ``LimitExceededException`` (the SDKs retry it as throttling).
- New WebSocket connections: 500 per second per account and Region; a connect beyond it is
  refused (429, the handshake is not upgraded). AWS documents the quota, not the refusal's exact
  body: the twin answers like the request throttle (docs/fidelity.md "Unverified on AWS").
- ``postToConnection`` takes 10-20 ms in-Region; ``latency_ms`` adds that round trip to every
  ``@connections`` call so fan-out is measured against it, not against loopback.

Sans-I/O: :class:`RateQuota` decides from the clock it is given; the server only asks it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.aws.limits import WEBSOCKET_NEW_CONNECTIONS_PER_SECOND

LIMIT_EXCEEDED = "LimitExceededException"
THROTTLED_MESSAGE = "Too Many Requests"
DEFAULT_CONNECTIONS_RPS = 10_000
DEFAULT_NEW_CONNECTIONS_PER_SECOND = WEBSOCKET_NEW_CONNECTIONS_PER_SECOND


class RateQuota:
    """A token bucket: ``rate`` per second, ``burst`` at most in an instant (not thread-safe:
    the gateway's one event loop asks it)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a quota needs rate > 0 and burst >= 1")
        self.rate, self.burst, self._clock = float(rate), float(burst), clock
        self._tokens = self.burst
        self._last = clock()
        self.refused = 0

    def allow(self) -> bool:
        """Take one request's token; False (and counted) when the quota is spent."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0 - 1e-9:  # (float refill rounding)
            self._tokens -= 1.0
            return True
        self.refused += 1
        return False


@dataclass(frozen=True)
class GatewayQuotas:
    """What ``--connections-rps``, ``--new-connections-per-second`` and
    ``--connections-latency-ms`` set (0 rps: not enforced)."""

    connections_rps: int = DEFAULT_CONNECTIONS_RPS
    new_connections_per_second: int = DEFAULT_NEW_CONNECTIONS_PER_SECOND
    connections_latency_ms: float = 0.0

    def connections_quota(self, clock: Callable[[], float] = time.monotonic) -> RateQuota | None:
        """The @connections bucket: AWS's burst is half the steady rate (5,000 of 10,000)."""
        if self.connections_rps <= 0:
            return None
        return RateQuota(self.connections_rps, max(1, self.connections_rps // 2), clock)

    def connect_quota(self, clock: Callable[[], float] = time.monotonic) -> RateQuota | None:
        """The new-connection bucket: one second's worth at once (AWS documents no burst)."""
        if self.new_connections_per_second <= 0:
            return None
        return RateQuota(self.new_connections_per_second,
                         max(1, self.new_connections_per_second), clock)


UNLIMITED = GatewayQuotas(connections_rps=0, new_connections_per_second=0)
