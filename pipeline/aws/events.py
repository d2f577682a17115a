"""The wire shapes Lambda produces for Kinesis: the invocation event, the outcome of a
synchronous invocation, and the on-failure record."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .kinesis import Record
from .limits import ACCOUNT_ID

DEFAULT_ACCOUNT = ACCOUNT_ID  # moto's default account, the twin's


def arn_region_account(arn: str, *, region: str) -> tuple[str, str]:
    """Region and account of an ARN (falling back to ``region`` / moto's default account)."""
    parts = arn.split(":")
    if len(parts) >= 5:
        return parts[3] or region, parts[4] or DEFAULT_ACCOUNT
    return region, DEFAULT_ACCOUNT


def function_arn(function_name: str, *, region: str, account: str) -> str:
    """``FunctionName`` may already be an ARN (or a partial ``account:function:name``)."""
    if function_name.startswith("arn:"):
        return function_name
    return f"arn:aws:lambda:{region}:{account}:function:{function_name.split(':')[-1]}"


def iso_timestamp(epoch_s: float) -> str:
    """``2019-11-14T00:38:06.021Z``: the timestamp format of Lambda's invocation records."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one synchronous invocation.

    ``ok`` False is a function error (unhandled exception, timeout, crashed worker); ``payload``
    is the function's return value decoded from JSON (None for ``null``/no value).
    """

    ok: bool
    payload: Any = None
    error_type: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class EventContext:
    """What every record of one shard's events shares."""

    shard_id: str
    stream_arn: str  # eventSourceARN is the stream's ARN, also for enhanced fan-out consumers
    region: str
    invoke_identity_arn: str


def kinesis_event(records: Sequence[Record], ctx: EventContext) -> dict[str, Any]:
    """The event Lambda passes for a Kinesis batch.
    https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html#services-kinesis-event-example
    """
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64.b64encode(r.data).decode("ascii"),
                    "approximateArrivalTimestamp": r.approximate_arrival_timestamp,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{ctx.shard_id}:{r.sequence_number}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": ctx.invoke_identity_arn,
                "awsRegion": ctx.region,
                "eventSourceARN": ctx.stream_arn,
            }
            for r in records
        ]
    }


def failure_record(
    records: Sequence[Record],
    ctx: EventContext,
    *,
    function_arn: str,
    condition: str,
    invoke_count: int,
    last_result: InvokeResult | None,
    now: float,
) -> dict[str, Any]:
    """The message an on-failure destination receives for discarded records (metadata only).
    https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html

    ``responseContext`` describes the last invocation of the records: ``functionError`` is
    ``"Unhandled"`` after a function error and present but ``null`` when the function returned
    (a partial batch response or a malformed one that failed the batch): AWS recorded exactly
    that (tests/aws_recordings, ``test_kinesis_report_batch_item_failures``). Records never
    invoked (expired by age before their first invocation) carry no ``functionError``: no
    recording shows that case, and there is no invocation to describe.
    """
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if last_result is not None:
        response["functionError"] = None if last_result.ok else "Unhandled"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso_timestamp(now),
        "KinesisBatchInfo": {
            "shardId": ctx.shard_id,
            "startSequenceNumber": records[0].sequence_number,
            "endSequenceNumber": records[-1].sequence_number,
            "approximateArrivalOfFirstRecord": iso_timestamp(
                records[0].approximate_arrival_timestamp
            ),
            "approximateArrivalOfLastRecord": iso_timestamp(
                records[-1].approximate_arrival_timestamp
            ),
            "batchSize": len(records),
            "streamArn": ctx.stream_arn,
        },
    }
