"""What every part of the twin shares about AWS: the account, the answer shape, codes and limits.

One definition each, imported by the template resolver, the gateway, the AWS services, the event
source mappings and the IAM checks. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pipeline import DEFAULT_REGION

# The twin's account and Region: the ones AWS's own samples and moto use (the Region is the
# product's default, so a client that names none talks to the twin's resources).
REGION = DEFAULT_REGION
ACCOUNT_ID = "123456789012"
PARTITION = "aws"

# AWS error codes the twin answers with (the wire ``__type`` / ``x-amzn-ErrorType``).
VALIDATION = "ValidationException"
SERIALIZATION = "SerializationException"
UNKNOWN_OPERATION = "UnknownOperationException"
ACCESS_DENIED = "AccessDeniedException"
THROUGHPUT_EXCEEDED = "ProvisionedThroughputExceededException"
INVALID_PARAMETER_VALUE = "InvalidParameterValueException"


@dataclass(frozen=True)
class AwsResponse:
    """An AWS JSON-protocol answer: HTTP status, raw body, error code (None on success)."""

    status: int
    body: bytes
    error_type: str | None = None


def aws_error(status: int, error_type: str, message: str) -> AwsResponse:
    """AWS's JSON error body ``{"__type": code, "message": ...}`` with its status."""
    return AwsResponse(status, orjson.dumps({"__type": error_type, "message": message}),
                       error_type)


# Kinesis Data Streams quotas
# (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html).
KINESIS_RECORDS_PER_SECOND = 1000  # per shard, writes
KINESIS_BYTES_PER_SECOND = 1024 * 1024  # per shard, writes
KINESIS_MAX_RECORD_BYTES = 1024 * 1024  # data + partition key
KINESIS_MAX_PARTITION_KEY = 256  # characters
KINESIS_PUT_RECORDS_MAX = 500  # records per PutRecords
KINESIS_PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
KINESIS_GET_RECORDS_MAX = 10_000  # records per GetRecords


@dataclass(frozen=True)
class Range:
    """An inclusive integer range AWS accepts for a setting."""

    low: int
    high: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and \
            self.low <= value <= self.high


# Lambda event source mapping ranges for a Kinesis source
# (https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html).
# -1 means "infinite" where AWS allows it (retries, record age).
ESM_BATCH_SIZE = Range(1, 10_000)
ESM_BATCHING_WINDOW_S = Range(0, 300)
ESM_PARALLELIZATION_FACTOR = Range(1, 10)
ESM_RETRY_ATTEMPTS = Range(-1, 10_000)
ESM_RECORD_AGE_S = Range(-1, 604_800)  # -1, or at least ESM_RECORD_AGE_MIN_S
ESM_RECORD_AGE_MIN_S = 60
ESM_TUMBLING_WINDOW_S = Range(0, 900)
