"""The Kinesis event and the on-failure record, in the exact shapes Lambda uses."""

from __future__ import annotations

import base64

from pipeline.aws.events import (
    EventContext,
    InvokeResult,
    failure_record,
    function_arn,
    iso_timestamp,
    kinesis_event,
)
from pipeline.aws.kinesis import Record as StoredRecord

STREAM = "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
CTX = EventContext("shardId-000000000006", STREAM, "us-east-2",
                   "arn:aws:iam::123456789012:role/lambda-role")
RECORDS = (
    StoredRecord("49590338271490256608559692538361571095921575989136588898", "1",
                 b"Hello, this is a test.", 1545084650.987),
    StoredRecord("49590338271490256608559692540925702759324208523137515618", "1",
                 b"\xffbinary", 1545084711.166),
)


def test_kinesis_event_matches_the_documented_example() -> None:
    # https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html (example event)
    event = kinesis_event(RECORDS, CTX)
    assert event["Records"][0] == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "1",
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
            "approximateArrivalTimestamp": 1545084650.987,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": "us-east-2",
        "eventSourceARN": STREAM,
    }
    assert base64.b64decode(event["Records"][1]["kinesis"]["data"]) == b"\xffbinary"


def test_failure_record_shape() -> None:
    # https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html
    message = failure_record(
        RECORDS, CTX, function_arn=function_arn("myfunction", region="us-east-2",
                                                account="123456789012"),
        condition="RetryAttemptsExhausted", invoke_count=3,
        last_result=InvokeResult(False, None, "ValueError", "boom"), now=1573691886.021,
    )
    request = message.pop("requestContext")
    assert len(request.pop("requestId")) == 36
    assert request == {
        "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 3,
    }
    assert message == {
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2019-11-14T00:38:06.021Z",
        "KinesisBatchInfo": {
            "shardId": "shardId-000000000006",
            "startSequenceNumber": RECORDS[0].sequence_number,
            "endSequenceNumber": RECORDS[1].sequence_number,
            "approximateArrivalOfFirstRecord": "2018-12-17T22:10:50.987Z",
            "approximateArrivalOfLastRecord": "2018-12-17T22:11:51.166Z",
            "batchSize": 2,
            "streamArn": STREAM,
        },
    }


def test_function_arn_accepts_names_and_arns() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    assert function_arn(arn, region="eu-west-1", account="1") == arn
    assert function_arn("f", region="us-east-1", account="123456789012") == arn
    assert iso_timestamp(0.0) == "1970-01-01T00:00:00.000Z"


def _response_context(last: InvokeResult | None) -> dict[str, object]:
    message = failure_record(RECORDS, CTX, function_arn="f", condition="RetryAttemptsExhausted",
                             invoke_count=1, last_result=last, now=0.0)
    context: dict[str, object] = message["responseContext"]
    return context


def test_function_error_is_null_when_the_function_returned() -> None:
    # AWS recorded "functionError": null (present) after partial batch responses
    # (tests/aws_recordings/cases/lambda_esm_kinesis.json).
    returned = _response_context(InvokeResult(True, {"batchItemFailures": [{"itemIdentifier": ""}]}))
    assert returned == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": None}
    raised = _response_context(InvokeResult(False, None, "ZeroDivisionError", "division by zero"))
    assert raised["functionError"] == "Unhandled"
    assert "functionError" not in _response_context(None)  # never invoked
