"""What every consumer Lambda ships (the shared layer): decode records, process batches with
partial failures, post to connections, read and write the roster, log and measure.

A consumer is a pure ``record_handler(record: Envelope, ctx: HandlerContext) -> None`` plus::

    def lambda_handler(event, context):
        return process_batch(event, context, record_handler)
"""

from __future__ import annotations

from .batch import OrderedKinesisProcessor, RecordHandler, process_batch
from .connections import ConnectionsClient, Outcome, PostResult, RetryPolicy, connections_client
from .context import FanoutReport, HandlerContext, error_frame, now_ms
from .envelope import ConnectionId, Envelope, EnvelopeError, parse_envelope
from .exceptions import (
    DeliveryError,
    PipelineRuntimeError,
    RosterError,
    SkippedAfterFailure,
    UndecodableRecord,
)
from .records import decode_record
from .roster import Roster, roster

__all__ = [
    "ConnectionId",
    "ConnectionsClient",
    "DeliveryError",
    "Envelope",
    "EnvelopeError",
    "FanoutReport",
    "HandlerContext",
    "OrderedKinesisProcessor",
    "Outcome",
    "PipelineRuntimeError",
    "PostResult",
    "RecordHandler",
    "RetryPolicy",
    "Roster",
    "RosterError",
    "SkippedAfterFailure",
    "UndecodableRecord",
    "connections_client",
    "decode_record",
    "error_frame",
    "now_ms",
    "parse_envelope",
    "process_batch",
    "roster",
]
