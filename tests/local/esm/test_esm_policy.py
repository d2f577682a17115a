"""Retry, bisect, record age and partial batch response decisions (pure, no asyncio)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from pipeline.local.esm import InvokeResult, MappingConfig, StoredRecord
from pipeline.local.esm.policy import (
    RECORD_AGE_EXCEEDED,
    RETRY_EXHAUSTED,
    BatchOutcome,
    Discard,
    WorkItem,
    classify,
    decide,
    parse_batch_item_failures,
    split_expired,
)

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/s"


def cfg(**kw: Any) -> MappingConfig:
    return MappingConfig(uuid="u", function_name="f", event_source_arn=STREAM, **kw)


def recs(n: int, arrival: float = 1000.0) -> tuple[StoredRecord, ...]:
    return tuple(StoredRecord(f"{i:056d}", "k", b"{}", arrival + i) for i in range(n))


def seqs(records: tuple[StoredRecord, ...]) -> list[int]:
    return [int(r.sequence_number) for r in records]


def drive(
    records: tuple[StoredRecord, ...],
    function: Callable[[tuple[StoredRecord, ...]], InvokeResult],
    config: MappingConfig,
) -> tuple[list[list[int]], list[int], list[Discard]]:
    """Run one lane's decisions to the end, as the runner does: (invocations, done, discards)."""
    pending = deque([WorkItem(records)])
    invocations: list[list[int]] = []
    done: list[int] = []
    discards: list[Discard] = []
    while pending:
        assert len(invocations) < 1000, "did not terminate"
        item = pending.popleft()
        item = replace(item, invokes=item.invokes + 1)
        invocations.append(seqs(item.records))
        result = function(item.records)
        outcome = classify(result, item.records,
                           report_batch_item_failures=config.report_batch_item_failures)
        decision = decide(item, outcome, config)
        done += seqs(decision.done)
        if decision.discard:
            discards.append(decision.discard)
        pending.extendleft(reversed(decision.retry))
    return invocations, done, discards


def poison(bad: int) -> Callable[[tuple[StoredRecord, ...]], InvokeResult]:
    def function(batch: tuple[StoredRecord, ...]) -> InvokeResult:
        if bad in seqs(batch):
            return InvokeResult(False, None, "ValueError", "poison")
        return InvokeResult(True, None)
    return function


def test_bisect_isolates_the_poison_record_and_splits_do_not_use_retries() -> None:
    invocations, done, discards = drive(
        recs(100), poison(37), cfg(bisect_batch_on_function_error=True, maximum_retry_attempts=2)
    )
    assert done == [i for i in range(100) if i != 37]  # each once, in order
    assert [seqs(d.records) for d in discards] == [[37]]
    assert discards[0].condition == RETRY_EXHAUSTED
    assert discards[0].invoke_count == 3  # the single record: first try + 2 retries
    assert len(invocations) < 30  # log2(100) levels of halves, not one record at a time


def test_without_bisect_the_whole_batch_is_retried_then_dropped() -> None:
    invocations, done, discards = drive(recs(10), poison(4), cfg(maximum_retry_attempts=2))
    assert invocations == [list(range(10))] * 3
    assert done == [] and [seqs(d.records) for d in discards] == [list(range(10))]
    assert discards[0].invoke_count == 3


def test_zero_retries_means_one_invocation() -> None:
    invocations, _, discards = drive(recs(3), poison(0), cfg(maximum_retry_attempts=0))
    assert len(invocations) == 1 and discards[0].invoke_count == 1


def test_infinite_retries_keep_retrying() -> None:
    decision = decide(WorkItem(recs(2), retries=10_000, invokes=1),
                      BatchOutcome("failure"), cfg(maximum_retry_attempts=-1))
    assert decision.retry and decision.retry[0].retries == 10_001 and decision.backoff


def test_partial_response_checkpoints_at_the_lowest_failed_sequence_number() -> None:
    calls = 0

    def function(batch: tuple[StoredRecord, ...]) -> InvokeResult:
        nonlocal calls
        calls += 1
        if calls == 1:  # report 7 and 3 failed; the retry starts from 3
            ids = [{"itemIdentifier": f"{i:056d}"} for i in (7, 3)]
            return InvokeResult(True, {"batchItemFailures": ids})
        return InvokeResult(True, {"batchItemFailures": []})

    invocations, done, discards = drive(
        recs(10), function, cfg(report_batch_item_failures=True, maximum_retry_attempts=1)
    )
    assert invocations == [list(range(10)), list(range(3, 10))]
    assert done == list(range(10)) and not discards


def test_partial_response_retries_count_and_exhaust() -> None:
    def function(batch: tuple[StoredRecord, ...]) -> InvokeResult:
        return InvokeResult(True, {"batchItemFailures": [{"itemIdentifier": f"{5:056d}"}]})

    invocations, done, discards = drive(
        recs(10), function, cfg(report_batch_item_failures=True, maximum_retry_attempts=2)
    )
    assert invocations == [list(range(10)), list(range(5, 10)), list(range(5, 10))]
    assert done == list(range(5))
    assert [seqs(d.records) for d in discards] == [list(range(5, 10))]


def test_partial_response_with_bisect_splits_at_the_returned_sequence_number() -> None:
    def function(batch: tuple[StoredRecord, ...]) -> InvokeResult:
        failed = [{"itemIdentifier": r.sequence_number} for r in batch if int(r.sequence_number) == 6]
        return InvokeResult(True, {"batchItemFailures": failed})

    invocations, done, discards = drive(
        recs(8), function,
        cfg(report_batch_item_failures=True, bisect_batch_on_function_error=True,
            maximum_retry_attempts=1),
    )
    assert invocations[:2] == [list(range(8)), [6, 7]]
    assert done == [0, 1, 2, 3, 4, 5, 7]
    assert [seqs(d.records) for d in discards] == [[6]]


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (None, "success"),
        ({}, "success"),
        ({"batchItemFailures": None}, "success"),
        ({"batchItemFailures": []}, "success"),
        ("done", "success"),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, "failure"),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, "failure"),
        ({"batchItemFailures": [{"itemId": f"{1:056d}"}]}, "failure"),
        ({"batchItemFailures": [{"itemIdentifier": "999"}]}, "failure"),
        ({"batchItemFailures": [f"{1:056d}"]}, "failure"),
        ({"batchItemFailures": "all"}, "failure"),
        ({"batchItemFailures": [{"itemIdentifier": f"{2:056d}"}]}, "partial"),
    ],
)
def test_batch_item_failure_responses(payload: Any, kind: str) -> None:
    outcome = parse_batch_item_failures(payload, [r.sequence_number for r in recs(3)])
    assert outcome.kind == kind
    if kind == "partial":
        assert outcome.first_failed == 2


def test_malformed_identifier_retries_the_whole_batch() -> None:
    batch = recs(4)
    result = InvokeResult(True, {"batchItemFailures": [{"itemIdentifier": ""}]})
    outcome = classify(result, batch, report_batch_item_failures=True)
    decision = decide(WorkItem(batch, invokes=1), outcome, cfg(maximum_retry_attempts=1))
    assert decision.done == () and decision.retry[0].records == batch


def test_responses_are_ignored_without_report_batch_item_failures() -> None:
    result = InvokeResult(True, {"batchItemFailures": [{"itemIdentifier": ""}]})
    assert classify(result, recs(2), report_batch_item_failures=False).kind == "success"


def test_record_age_splits_expired_records_off() -> None:
    batch = recs(5, arrival=1000.0)  # arrivals 1000..1004
    expired, rest = split_expired(WorkItem(batch, retries=1), now=1063.5, maximum_record_age_s=60)
    assert seqs(expired) == [0, 1, 2, 3] and rest is not None and seqs(rest.records) == [4]
    assert rest.retries == 1
    expired, rest = split_expired(WorkItem(batch), now=2000.0, maximum_record_age_s=60)
    assert len(expired) == 5 and rest is None
    assert split_expired(WorkItem(batch), now=1e9, maximum_record_age_s=-1)[0] == ()
    assert RECORD_AGE_EXCEEDED == "RecordAgeExceeded"


def test_partial_response_retries_keep_counting_invocations() -> None:
    # AWS recorded approximateInvokeCount 4 for a record failed by a partial response in a batch
    # of 3 and retried alone 3 times (tests/aws_recordings/cases/lambda_esm_kinesis.json).
    def function(batch: tuple[StoredRecord, ...]) -> InvokeResult:
        failed = [{"itemIdentifier": r.sequence_number} for r in batch if int(r.sequence_number) == 2]
        return InvokeResult(True, {"batchItemFailures": failed})

    invocations, done, discards = drive(
        recs(3), function, cfg(report_batch_item_failures=True, maximum_retry_attempts=3))
    assert invocations == [[0, 1, 2], [2], [2], [2]]
    assert done == [0, 1]
    assert [(seqs(d.records), d.invoke_count) for d in discards] == [([2], 4)]


def test_record_age_keeps_the_invocations_so_far() -> None:
    failed = InvokeResult(False, None, "ValueError", "boom")
    item = WorkItem(recs(2, arrival=0.0), retries=2, invokes=3, last_result=failed)
    expired, remaining = split_expired(replace(item, records=item.records[:1] + recs(1, 100.0)),
                                       now=100.0, maximum_record_age_s=60)
    assert seqs(expired) == [0]
    assert remaining is not None and remaining.invokes == 3 and remaining.last_result == failed
