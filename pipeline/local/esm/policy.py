"""Failure semantics of Kinesis event source mappings, pure: what to do after an invocation.

- A function error retries the whole batch, bounded by ``MaximumRetryAttempts`` (-1 = until the
  record expires). With ``BisectBatchOnFunctionError`` the batch is split in two first, and
  "splitting a batch does not count towards the retry quota":
  https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html
- Records older than ``MaximumRecordAgeInSeconds`` are discarded before an invocation.
- ``ReportBatchItemFailures``: the checkpoint moves to the lowest failed sequence number and the
  records from there are retried; an empty/null/misnamed ``itemIdentifier`` fails the whole batch;
  an empty or null list (or response) is a success. With bisect on, a partial response bisects
  at the returned sequence number:
  https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html
  Twin choices where AWS is silent: an identifier not in the batch fails the whole batch; a
  partial response naming the batch's first record makes no progress and is handled as a
  function error (so it is bounded like one); a non-object response is a success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .config import MappingConfig
from .interfaces import InvokeResult, StoredRecord

RETRY_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


@dataclass(frozen=True)
class WorkItem:
    """A batch to invoke, with what it has used of the retry quota."""

    records: tuple[StoredRecord, ...]
    retries: int = 0  # retries consumed (bisect splits do not count)
    # Invocations that carried these records since the batch was last split: a partial batch
    # response's retry keeps counting (AWS recorded approximateInvokeCount 4 for a record
    # failed in a batch of 3 and then retried 3 times alone); a bisect split starts again.
    invokes: int = 0
    last_result: InvokeResult | None = None  # of the latest invocation carrying these records


@dataclass(frozen=True)
class BatchOutcome:
    """An invocation classified: success, failure (whole batch) or partial (from an index)."""

    kind: Literal["success", "failure", "partial"]
    first_failed: int = 0  # partial: index of the lowest failed record
    reason: str = ""


@dataclass(frozen=True)
class Discard:
    """Records given up on; the on-failure destination hears about them."""

    records: tuple[StoredRecord, ...]
    condition: str
    invoke_count: int


@dataclass(frozen=True)
class RetryDecision:
    """What follows an invocation."""

    done: tuple[StoredRecord, ...] = ()  # processed; the checkpoint passes them
    retry: tuple[WorkItem, ...] = ()  # to invoke next, in order, before newer records
    discard: Discard | None = None
    backoff: bool = False  # wait before the next attempt


def classify(
    result: InvokeResult, batch: Sequence[StoredRecord], *, report_batch_item_failures: bool
) -> BatchOutcome:
    """Turn an invocation result into an :class:`BatchOutcome`."""
    if not result.ok:
        return BatchOutcome("failure", reason=f"{result.error_type}: {result.error_message}")
    if not report_batch_item_failures:
        return BatchOutcome("success")
    return parse_batch_item_failures(result.payload, [r.sequence_number for r in batch])


def parse_batch_item_failures(payload: Any, sequence_numbers: Sequence[str]) -> BatchOutcome:
    """Read ``{"batchItemFailures": [{"itemIdentifier": seq}, ...]}`` against the batch."""
    if not isinstance(payload, Mapping):
        return BatchOutcome("success")  # null/empty response (or not an object): nothing reported
    failures = payload.get("batchItemFailures")
    if failures is None:
        return BatchOutcome("success")
    if not isinstance(failures, list):
        return BatchOutcome("failure", reason="batchItemFailures is not a list")
    if not failures:
        return BatchOutcome("success")
    index = {seq: i for i, seq in enumerate(sequence_numbers)}
    lowest: int | None = None
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, Mapping) else None
        if not isinstance(identifier, str) or not identifier:
            return BatchOutcome("failure", reason=f"malformed batch item failure {entry!r}")
        if identifier not in index:
            return BatchOutcome("failure", reason=f"itemIdentifier {identifier!r} is not in the batch")
        lowest = index[identifier] if lowest is None else min(lowest, index[identifier])
    assert lowest is not None
    return BatchOutcome("partial", first_failed=lowest)


def can_retry(retries_used: int, maximum_retry_attempts: int) -> bool:
    return maximum_retry_attempts == -1 or retries_used < maximum_retry_attempts


def decide(item: WorkItem, outcome: BatchOutcome, config: MappingConfig) -> RetryDecision:
    """The next step after invoking ``item`` (whose ``invokes`` already counts this call)."""
    records = item.records
    if outcome.kind == "success":
        return RetryDecision(done=records)
    if outcome.kind == "partial" and outcome.first_failed > 0:
        done, rest = records[: outcome.first_failed], records[outcome.first_failed :]
        if config.bisect_batch_on_function_error:
            return RetryDecision(done=done, retry=(WorkItem(rest, item.retries),))
        if can_retry(item.retries, config.maximum_retry_attempts):
            # The retry keeps the invocation count: the records just failed were in this
            # invocation (the recorded on-failure message counts it).
            retry = WorkItem(rest, item.retries + 1, item.invokes)
            return RetryDecision(done=done, retry=(retry,), backoff=True)
        return RetryDecision(done=done, discard=Discard(rest, RETRY_EXHAUSTED, item.invokes))
    if config.bisect_batch_on_function_error and len(records) > 1:
        middle = (len(records) + 1) // 2
        halves = (WorkItem(records[:middle], item.retries), WorkItem(records[middle:], item.retries))
        return RetryDecision(retry=halves)
    if can_retry(item.retries, config.maximum_retry_attempts):
        return RetryDecision(retry=(WorkItem(records, item.retries + 1, item.invokes),), backoff=True)
    return RetryDecision(discard=Discard(records, RETRY_EXHAUSTED, item.invokes))


def split_expired(
    item: WorkItem, now: float, maximum_record_age_s: int
) -> tuple[tuple[StoredRecord, ...], WorkItem | None]:
    """Records of ``item`` older than the maximum age, and what is left to invoke (or None)."""
    if maximum_record_age_s < 0:
        return (), item
    expired = tuple(
        r for r in item.records if now - r.approximate_arrival_timestamp > maximum_record_age_s
    )
    if not expired:
        return (), item
    keep = tuple(
        r for r in item.records if now - r.approximate_arrival_timestamp <= maximum_record_age_s
    )
    return expired, (WorkItem(keep, item.retries, item.invokes, item.last_result) if keep else None)
