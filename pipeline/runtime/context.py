"""What a record handler gets besides its record: replies, fan-out, roster, logs, metrics.

``HandlerContext`` turns @connections answers into the documented behaviour:
410 prunes the connection from the roster once per container, 413 becomes a
``payload_too_large`` error frame to the sender, a reply that still fails after the bounded
retries raises :class:`DeliveryError` so the record is reported failed and retried.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import observability as obs
from .connections import ConnectionsClient, Outcome, PostResult, connections_client
from .envelope import Envelope
from .exceptions import DeliveryError, RosterError
from .roster import Roster, roster

_PRUNED_MEMORY = 10_000
_pruned: OrderedDict[str, None] = OrderedDict()  # per container: prune each connection once


def now_ms() -> int:
    return int(time.time() * 1000)


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"action":"error","error":code,"message":message, ...}`` (docs/contracts.md)."""
    return {"action": "error", "error": code, "message": message, **extra}


@dataclass
class FanoutReport:
    """Counts of one fan-out by outcome, and the ids that failed for good."""

    delivered: int = 0
    gone: int = 0
    too_large: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def attempted(self) -> int:
        return self.delivered + self.gone + self.too_large + len(self.failed)


@dataclass
class HandlerContext:
    """Per invocation: the Lambda context, the consumer start time and the shared clients."""

    lambda_context: Any = None
    started_ms: int = field(default_factory=now_ms)
    connections_client: ConnectionsClient | None = None
    roster_client: Roster | None = None
    logger: Any = obs.logger

    @property
    def connections(self) -> ConnectionsClient:
        if self.connections_client is None:
            self.connections_client = connections_client()
        return self.connections_client

    @property
    def roster(self) -> Roster:
        if self.roster_client is None:
            self.roster_client = roster()
        return self.roster_client

    @property
    def has_roster(self) -> bool:
        return self.roster_client is not None or bool(os.environ.get("ROSTER_TABLE_NAME"))

    def reply(self, record: Envelope, payload: Mapping[str, Any]) -> PostResult:
        """Post ``payload`` to the record's sender. Gone -> pruned; 413 -> error frame instead;
        still failing after retries -> :class:`DeliveryError` (the record is retried)."""
        result = self._post_one(record.connection_id, _encode(payload), record)
        if result.outcome is Outcome.TOO_LARGE and payload.get("action") != "error":
            self.error(record, "payload_too_large",
                       "the reply is larger than the 128 KB a WebSocket message may carry")
        elif result.outcome is Outcome.FAILED:
            raise DeliveryError({result.connection_id: _why(result)})
        return result

    def error(self, record: Envelope, code: str, message: str, **extra: Any) -> PostResult:
        """Send an error frame to the record's sender."""
        return self.reply(record, error_frame(code, message, **extra))

    def fanout(
        self, connection_ids: Iterable[str], payload: Mapping[str, Any],
        record: Envelope | None = None,
    ) -> FanoutReport:
        """Post ``payload`` to many connections concurrently; prune the gone ones.

        Individual failures (after retries) are logged and counted, not retried, so one bad
        connection does not replay the message to everyone; when *every* post failed the
        endpoint itself is down and :class:`DeliveryError` makes the record retry.
        """
        results = self.connections.post_many(connection_ids, _encode(payload))
        report = FanoutReport()
        for result in results:
            self._account(result, record)
            if result.outcome is Outcome.DELIVERED:
                report.delivered += 1
            elif result.outcome is Outcome.GONE:
                report.gone += 1
            elif result.outcome is Outcome.TOO_LARGE:
                report.too_large += 1
            else:
                report.failed[result.connection_id] = _why(result)
        if report.failed:
            self.logger.error("fan-out posts failed", extra={"failed": report.failed,
                                                             "delivered": report.delivered})
            if len(report.failed) == report.attempted:
                raise DeliveryError(report.failed)
        return report

    def prune(self, connection_id: str) -> bool:
        """Remove every roster item of a gone connection, once per container."""
        if connection_id in _pruned or not self.has_roster:
            return False
        try:
            removed = self.roster.remove_connection(connection_id)
        except RosterError as exc:  # the TTL still cleans it up eventually
            self.logger.warning("prune failed", extra={"connectionId": connection_id,
                                                       "error": str(exc)})
            return False
        _pruned[connection_id] = None
        while len(_pruned) > _PRUNED_MEMORY:
            _pruned.popitem(last=False)
        obs.count(obs.CONNECTIONS_PRUNED)
        self.logger.info("pruned gone connection",
                         extra={"connectionId": connection_id, "items": removed})
        return True

    def _post_one(self, connection_id: str, data: bytes, record: Envelope | None) -> PostResult:
        result = self.connections.post(connection_id, data)
        self._account(result, record)
        return result

    def _account(self, result: PostResult, record: Envelope | None) -> None:
        obs.count(obs.POST_RETRIES, result.attempts - 1)
        if result.outcome is Outcome.DELIVERED:
            obs.count(obs.POSTS_DELIVERED)
            obs.latency(obs.CONSUMER_TO_POST_MS, result.done_ms - self.started_ms)
            if record is not None and record.event_type != "SERVER":
                obs.latency(obs.GATEWAY_TO_POST_MS, result.done_ms - record.request_time_epoch)
        elif result.outcome is Outcome.GONE:
            obs.count(obs.POSTS_GONE)
            self.prune(result.connection_id)
        elif result.outcome is Outcome.TOO_LARGE:
            obs.count(obs.POSTS_TOO_LARGE)
        else:
            obs.count(obs.POSTS_FAILED)


def _encode(payload: Mapping[str, Any]) -> bytes:
    return orjson.dumps(payload)


def _why(result: PostResult) -> str:
    return f"HTTP {result.status} {result.error_code}".strip()


def forget_pruned() -> None:
    """Clear the per-container prune memory (tests)."""
    _pruned.clear()
