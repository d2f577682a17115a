"""Batch processing with partial batch responses, per-key ordering and KPL de-aggregation.

The loop is the runtime's own (not Powertools' ``BatchProcessor``, whose import alone is
~160 ms of a container's cold start here: it loads every event data class, jmespath and
asyncio). It answers as Powertools' Kinesis processor does, a ``batchItemFailures`` list of the
failed records' sequence numbers (``raise_on_entire_batch_failure=False``: a batch whose every
record failed is answered the same way, not raised), with two changes that Kinesis needs:

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

from collections.abc import Callable
from typing import Any, Literal, TypedDict

from . import observability as obs
from .context import HandlerContext
from .envelope import Envelope
from .exceptions import DeliveryError, UndecodableRecord
from .invocation import Invocation
from .records import decode_record

RecordHandler = Callable[[Envelope, HandlerContext], None]
UndecodablePolicy = Literal["report", "fail"]


class PartialItemFailure(TypedDict):
    itemIdentifier: str


class PartialItemFailureResponse(TypedDict):
    """Lambda's partial batch response (``ReportBatchItemFailures``)."""

    batchItemFailures: list[PartialItemFailure]


class OrderedKinesisProcessor:
    """Runs a record handler over a Kinesis event's records, in order, keeping per-key order
    and de-aggregating KPL records; :meth:`run` gives the partial batch response."""

    def __init__(self, ctx: HandlerContext, undecodable: UndecodablePolicy = "report") -> None:
        self.ctx = ctx
        self.undecodable = undecodable
        self._failed_keys: set[str] = set()
        self._seen: list[dict[str, Any]] = []  # the raw records, in order
        self._failed: dict[int, None] = {}  # indices of the failed records

    def run(self, records: list[Any], handler: RecordHandler) -> PartialItemFailureResponse:
        """Every record through ``handler``, then the replies settled; the failed records'
        sequence numbers, each once, in the event's order."""
        self._failed_keys = set()
        self._seen = []
        self._failed = {}
        for record in records:
            self._process_record(record, handler)
        self._settle(self.ctx.invocation)
        return {"batchItemFailures": [
            {"itemIdentifier": str(self._seen[i]["kinesis"]["sequenceNumber"])}
            for i in sorted(self._failed)]}

    def _settle(self, invocation: Invocation) -> None:
        """Fail the records whose replies failed, and every later record of their partition
        keys (their replies were held back, or must not overtake on the retry)."""
        failures = invocation.settle()
        if not failures:
            return
        first: dict[str, int] = {}  # partition key -> index of its first failed record
        errors: dict[int, DeliveryError] = {}
        for index, error in failures:
            key = self._seen[index]["kinesis"]["partitionKey"]
            first[key] = min(first.get(key, index), index)
            errors.setdefault(index, error)
        for index, record in enumerate(self._seen):
            key = record["kinesis"]["partitionKey"]
            if key not in first or index < first[key] or index in self._failed:
                continue
            self._failed[index] = None
            if index in errors:
                obs.count(obs.RECORDS_FAILED)
                self.ctx.logger.error("record failed: reply not delivered", extra={
                    "sequenceNumber": record["kinesis"]["sequenceNumber"], "partitionKey": key,
                    "error": str(errors[index])})
            else:
                obs.count(obs.RECORDS_SKIPPED)

    def _process_record(self, record: Any, handler: RecordHandler) -> None:
        index = len(self._seen)
        self.ctx.invocation.charge_to(index)
        self._seen.append(record)
        kinesis = record["kinesis"]
        seq = kinesis["sequenceNumber"]
        key = kinesis["partitionKey"]
        if key in self._failed_keys:
            obs.count(obs.RECORDS_SKIPPED)
            self._failed[index] = None
            return
        try:
            envelopes = decode_record(record)
        except UndecodableRecord as exc:
            obs.count(obs.RECORDS_UNDECODABLE)
            self.ctx.logger.error("undecodable record", extra={
                "sequenceNumber": seq, "reason": exc.reason, "policy": self.undecodable,
                "record": record})
            if self.undecodable == "fail":
                self._failed_keys.add(key)
                self._failed[index] = None
            return
        try:
            for envelope in envelopes:
                obs.count(obs.RECORDS_IN)
                _observe_latency(envelope, self.ctx.invocation.started_ms)
                handler(envelope, self.ctx)
        except Exception:
            self._failed_keys.add(key)
            self._failed[index] = None
            obs.count(obs.RECORDS_FAILED)
            self.ctx.logger.exception("record failed", extra={
                "sequenceNumber": seq, "partitionKey": key})


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
    request_id = getattr(lambda_context, "aws_request_id", None)
    if request_id:
        ctx.logger.append_keys(function_request_id=request_id)
    records = event.get("Records")
    if not isinstance(records, list):
        ctx.logger.error("not a Kinesis event: no Records list", extra={"event": event})
        return {"batchItemFailures": []}
    try:
        return OrderedKinesisProcessor(ctx, undecodable).run(records, record_handler)
    finally:
        obs.flush()
