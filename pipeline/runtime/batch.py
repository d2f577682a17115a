"""Batch processing with partial batch responses, per-key ordering and KPL de-aggregation.

Built on Powertools' ``BatchProcessor(EventType.KinesisDataStreams)``, with two changes that
Kinesis needs and Powertools does not do by itself:

- Order per partition key. Powertools carries on after a failed record. Here, once a record
  fails, every later record with the same partition key (= the same connection) is reported
  failed *without being processed*, so nothing of that connection overtakes the failed frame;
  Lambda retries from the lowest reported sequence number, so records of *other* keys after
  it that succeeded are delivered again: delivery is at-least-once, as with any Kinesis ESM.
  https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html
- KPL aggregation. A Kinesis record may carry many user records; they are handled in order and
  a failure fails the whole Kinesis record (its sequence number is the ``itemIdentifier``:
  Lambda cannot checkpoint inside an aggregated record, so on retry the sub-records before the
  failed one run again: at-least-once).

Undecodable records (bad base64, corrupt KPL, not an envelope) follow ``undecodable``:
``"report"`` (default) logs the whole record at ERROR with its sequence number, counts
``RecordsUndecodable`` and treats it as processed: a retry cannot fix bytes already in the
stream, and retrying would block the shard until the record expires. ``"fail"`` reports it
failed instead (then the mapping's bounded retries and on-failure destination apply).

Replies and fan-outs are posted concurrently across connections and in order per connection
while the batch runs (:mod:`.invocation`): a batch costs about one @connections round trip per
connection instead of one per record. The batch waits for every post before it answers; a reply
that fails for good fails its record, and with it every later record of the same partition key
(those have run by then, but their replies to that connection were held back; the retry runs
them again: at-least-once, as above). The posts never retry past the invocation's deadline (its remaining time less 10 %,
at least 1 s), so the partial batch response goes out before Lambda's timeout.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from . import observability as obs
from .context import HandlerContext
from .envelope import Envelope
from .exceptions import DeliveryError, SkippedAfterFailure, UndecodableRecord
from .invocation import Invocation
from .records import decode_record

RecordHandler = Callable[[Envelope, HandlerContext], None]
UndecodablePolicy = Literal["report", "fail"]


class OrderedKinesisProcessor(BatchProcessor):
    """A Kinesis ``BatchProcessor`` that keeps per-key order and de-aggregates KPL records."""

    def __init__(self, ctx: HandlerContext, undecodable: UndecodablePolicy = "report") -> None:
        super().__init__(event_type=EventType.KinesisDataStreams,
                         raise_on_entire_batch_failure=False)
        self.ctx = ctx
        self.undecodable = undecodable
        self._failed_keys: set[str] = set()
        self._seen: list[KinesisStreamRecord] = []  # in order, for settling the replies

    def _prepare(self) -> None:
        super()._prepare()  # type: ignore[no-untyped-call]
        self._failed_keys = set()
        self._seen = []

    def process(self) -> list[Any]:
        results: list[Any] = super().process()
        self._settle(self.ctx.invocation)
        return results

    def _settle(self, invocation: Invocation) -> None:
        """Fail the records whose replies failed, and every later record of their partition
        keys (their replies were held back, or must not overtake on the retry)."""
        failures = invocation.settle()
        if not failures:
            return
        first: dict[str, int] = {}  # partition key -> index of its first failed record
        errors: dict[int, DeliveryError] = {}
        for index, error in failures:
            key = self._seen[index].kinesis.partition_key
            first[key] = min(first.get(key, index), index)
            errors.setdefault(index, error)
        failed_ids = {id(m) for m in self.fail_messages}
        for index, data in enumerate(self._seen):
            key = data.kinesis.partition_key
            if key not in first or index < first[key] or id(data) in failed_ids:
                continue
            self.success_messages.remove(data)
            seq = data.kinesis.sequence_number
            exc: Exception = errors.get(index) or SkippedAfterFailure(seq, key)
            if index in errors:
                obs.count(obs.RECORDS_FAILED)
                self.ctx.logger.error("record failed: reply not delivered", extra={
                    "sequenceNumber": seq, "partitionKey": key, "error": str(exc)})
            else:
                obs.count(obs.RECORDS_SKIPPED)
            self.failure_handler(record=data, exception=(type(exc), exc, None))

    def _process_record(self, record: dict[str, Any]) -> Any:
        data = KinesisStreamRecord(record)
        self.ctx.invocation.charge_to(len(self._seen))
        self._seen.append(data)
        # the raw fields data.kinesis.sequence_number/partition_key read (without a wrapper
        # object per access: twice per record, on the batch's hot path)
        kinesis = record["kinesis"]
        seq = kinesis["sequenceNumber"]
        key = kinesis["partitionKey"]
        if key in self._failed_keys:
            obs.count(obs.RECORDS_SKIPPED)
            skipped = SkippedAfterFailure(seq, key)
            return self.failure_handler(record=data, exception=(type(skipped), skipped, None))
        try:
            envelopes = decode_record(record)
        except UndecodableRecord as exc:
            obs.count(obs.RECORDS_UNDECODABLE)
            self.ctx.logger.error("undecodable record", extra={
                "sequenceNumber": seq, "reason": exc.reason, "policy": self.undecodable,
                "record": record})
            if self.undecodable == "fail":
                self._failed_keys.add(key)
                return self.failure_handler(record=data, exception=sys.exc_info())
            return self.success_handler(record=data, result=None)
        try:
            for envelope in envelopes:
                obs.count(obs.RECORDS_IN)
                _observe_latency(envelope, self.ctx.invocation.started_ms)
                self.handler(envelope, self.ctx)
        except Exception:
            self._failed_keys.add(key)
            obs.count(obs.RECORDS_FAILED)
            self.ctx.logger.exception("record failed", extra={
                "sequenceNumber": seq, "partitionKey": key})
            return self.failure_handler(record=data, exception=sys.exc_info())
        return self.success_handler(record=data, result=None)


def _observe_latency(envelope: Envelope, started_ms: int) -> None:
    arrival = envelope.arrival_ms
    if envelope.event_type != "SERVER":
        obs.latency(obs.GATEWAY_TO_STREAM_MS, arrival - envelope.request_time_epoch)
    obs.latency(obs.STREAM_TO_CONSUMER_MS, started_ms - arrival)


def process_batch(
    event: dict[str, Any],
    lambda_context: Any,
    record_handler: RecordHandler,
    *,
    undecodable: UndecodablePolicy = "report",
    ctx: HandlerContext | None = None,
) -> PartialItemFailureResponse:
    """Run ``record_handler`` over a Lambda Kinesis event; returns the partial batch response.

    ``ctx`` (tests, or a container's own) is given a new invocation: an empty memo, the
    deadline of ``lambda_context``."""
    ctx = ctx or HandlerContext()
    ctx.begin(lambda_context)
    processor = OrderedKinesisProcessor(ctx, undecodable)
    request_id = getattr(lambda_context, "aws_request_id", None)
    if request_id:
        ctx.logger.append_keys(function_request_id=request_id)
    records = event.get("Records")
    if not isinstance(records, list):
        ctx.logger.error("not a Kinesis event: no Records list", extra={"event": event})
        return {"batchItemFailures": []}
    try:
        with processor(records, record_handler):
            processor.process()
    finally:
        obs.flush()
    response = processor.response()
    if response["batchItemFailures"]:
        # Aggregated sub-records share a sequence number: report each Kinesis record once.
        seen: dict[str, None] = {}
        for item in response["batchItemFailures"]:
            seen.setdefault(str(item["itemIdentifier"]), None)
        response = {"batchItemFailures": [{"itemIdentifier": s} for s in seen]}
    return response
