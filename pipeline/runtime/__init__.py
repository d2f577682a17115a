"""What every consumer Lambda ships (the shared layer): decode records, process batches with
partial failures, post to connections, read and write the roster, log and measure.

A consumer is a pure ``record_handler(record: Envelope, ctx: HandlerContext) -> None`` plus::

    def lambda_handler(event, context):
        return process_batch(event, context, record_handler)

One reply path: ``ctx.reply``/``ctx.error``/``ctx.fanout`` queue posts on the invocation
(:mod:`.invocation`), concurrent across connections and in order per connection; the batch
answers once every post has settled.
"""

from __future__ import annotations

from .batch import OrderedKinesisProcessor, RecordHandler, process_batch
from .connections import ConnectionsClient, Outcome, PostResult, RetryPolicy, connections_client
from .context import HandlerContext
from .envelope import ConnectionId, Envelope, EnvelopeError, parse_envelope
from .exceptions import (
    DeliveryError,
    PipelineRuntimeError,
    RosterError,
    SkippedAfterFailure,
    UndecodableRecord,
)
from .invocation import FanoutReport, Invocation, ReplyObserver
from .records import decode_record
from .replies import error_frame, now_ms
from .roster import Roster, roster

__all__ = [
    "ConnectionId",
    "ConnectionsClient",
    "DeliveryError",
    "Envelope",
    "EnvelopeError",
    "FanoutReport",
    "HandlerContext",
    "Invocation",
    "OrderedKinesisProcessor",
    "Outcome",
    "PipelineRuntimeError",
    "PostResult",
    "RecordHandler",
    "ReplyObserver",
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
