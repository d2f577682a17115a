"""Frames with an ``id`` are processed once per (connection, route, id) for an hour (docs/acks.md).

A client that gets no ack (or a retryable nack) resends the same frame with the same ``id``; the
stream may then hold it several times, and Lambda's at-least-once delivery adds more. The record
handler runs once: Powertools' idempotency utility keeps an execution record in the roster table,
and every reply the first execution sent to the sender (``HandlerContext.reply``, error frames
included) is stored in it and sent again for each duplicate, so "sent three times" means "answered
three times, side effects (room fan-out, roster writes) once". The replies are seen through the
invocation's reply observers (``HandlerContext.observe_replies``), for the one execution.

Roster items: ``pk = IDEM#<connectionId>``, ``sk = IDEM#<md5 of [routeKey, id]>``, ``expiresAt``
(the table's TTL), ``status`` (INPROGRESS/COMPLETED), ``data`` (the replies) and ``validation``
(a hash of the frame: the same id with a different frame is refused with ``invalid_request``).
One partition per connection, not Powertools' default single ``idempotency#<function>`` partition,
which would cap the whole function at one partition's write throughput.
https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/

Frames without an ``id``, or whose ``id`` is not a 1-128 character string or an integer, are
processed as before, with no DynamoDB call. Consumers without roster access are not deduplicated.
A consumer opts in with one wrapper: ``process_batch(event, context, idempotent(record_handler))``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import observability as obs
from .container import container
from .context import HandlerContext
from .envelope import Envelope

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
    )

TTL_SECONDS = 3600
MAX_ID_CHARS = 128
KEY_PREFIX = "IDEM#"
FRAMES_DEDUPLICATED = "FramesDeduplicated"

RecordHandler = Callable[[Envelope, HandlerContext], None]


def _connection_scoped_layer() -> type[DynamoDBPersistenceLayer]:
    """The layer class, built on first use: Powertools' idempotency utility and boto3 are
    loaded only when a frame carries an ``id`` (a cold start without one does not pay them)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    class ConnectionScopedLayer(DynamoDBPersistenceLayer):
        """The execution record under ``pk = IDEM#<connectionId>`` (the key prefix),
        ``sk`` = hash."""

        def _get_key(self, idempotency_key: str) -> dict[str, Any]:
            # idempotency_key is "<key_prefix>#<hash>" and the prefix is "IDEM#<connectionId>".
            pk, _, digest = idempotency_key.rpartition("#")
            return {self.key_attr: {"S": pk},
                    str(self.sort_key_attr): {"S": KEY_PREFIX + digest}}

    return ConnectionScopedLayer


def frame_id(record: Envelope) -> str | None:
    """The frame's ``id`` when it is usable for deduplication, else None."""
    if record.event_type != "MESSAGE" or not record.connection_id:
        return None
    frame = record.body_object()
    if frame is None:
        return None
    value = frame.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        return value
    return None


def persistence_layer() -> DynamoDBPersistenceLayer:
    """One persistence layer (and DynamoDB client) per process and roster table."""
    table = os.environ["ROSTER_TABLE_NAME"]

    def make() -> DynamoDBPersistenceLayer:
        import boto3
        from botocore.config import Config

        client = boto3.client("dynamodb", config=Config(retries={"mode": "standard"}))
        return _connection_scoped_layer()(
            table_name=table, key_attr="pk", sort_key_attr="sk",
            expiry_attr="expiresAt", boto3_client=client,
        )

    shared = container()
    return shared.shared(shared.idempotency_layers, table, make)


def process_once(record: Envelope, ctx: HandlerContext,
                 handler: RecordHandler) -> None:
    """Run ``handler`` for ``record`` at most once per (connection, route, id); replay replies."""
    fid = frame_id(record)
    if fid is None or not ctx.has_roster:
        handler(record, ctx)
        return
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyValidationError

    executed = False

    def run(frame: dict[str, Any]) -> dict[str, Any]:
        nonlocal executed
        executed = True
        replies: list[dict[str, Any]] = []

        def capture(to: Envelope, payload: Mapping[str, Any]) -> None:
            if to is record:
                replies.append(dict(payload))

        # Every reply to the sender (error frames included) passes the invocation's reply
        # observers: the ones of this execution are stored, to be replayed for duplicates.
        with ctx.observe_replies(capture):
            handler(record, ctx)
        return {"replies": replies}

    config = IdempotencyConfig(
        event_key_jmespath="[routeKey, id]", payload_validation_jmespath="body",
        expires_after_seconds=TTL_SECONDS,
    )
    remaining = getattr(ctx.lambda_context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        # Lets an execution cut short by a timeout expire, so the retry is not "in progress".
        config.register_lambda_context(ctx.lambda_context)
    once = idempotent_function(run, data_keyword_argument="frame",
                               persistence_store=persistence_layer(), config=config,
                               key_prefix=f"{KEY_PREFIX}{record.connection_id}")
    frame = {"routeKey": record.route_key, "id": fid, "body": record.body}
    try:
        result = once(frame=frame)
    except IdempotencyValidationError:
        ctx.error(record, "invalid_request",
                  "this id was already used for a different frame on this connection",
                  id=fid)
        return
    if executed:
        # A fan-out is settled when the batch ends, after the record above was saved
        # COMPLETED: if it fails for good, its record is retried, and the retry must run the
        # handler again (deliver the message), not replay it as a duplicate.
        prefix = f"{KEY_PREFIX}{record.connection_id}"
        ctx.on_fanout_failure(lambda: _forget(config, prefix, frame))
        return
    obs.count(FRAMES_DEDUPLICATED)
    ctx.logger.info("duplicate frame: replies replayed, not processed again", extra={
        "connectionId": record.connection_id, "routeKey": record.route_key, "id": fid})
    replies = result.get("replies") if isinstance(result, dict) else None
    for payload in replies or ():
        if isinstance(payload, dict):
            ctx.reply(record, payload)


def _forget(config: IdempotencyConfig, prefix: str, frame: dict[str, Any]) -> None:
    """Delete the execution record of ``frame`` (under ``prefix``), as Powertools does when the
    handler raises."""
    layer = persistence_layer()
    layer.configure(config, key_prefix=prefix)
    layer.delete_record(data=frame, exception=RuntimeError("fan-out failed"))


def idempotent(handler: RecordHandler) -> RecordHandler:
    """``handler`` made idempotent on frames with an ``id``: ``process_batch(event, context,
    idempotent(record_handler))``."""

    def once(record: Envelope, ctx: HandlerContext) -> None:
        process_once(record, ctx, handler)

    return once
