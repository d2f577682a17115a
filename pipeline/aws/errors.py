"""AWS error codes and the JSON-protocol answer shape (``{"__type": code, "message": ...}``)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

# AWS error codes the twin answers with (the wire ``__type`` / ``x-amzn-ErrorType``).
VALIDATION = "ValidationException"
SERIALIZATION = "SerializationException"
UNKNOWN_OPERATION = "UnknownOperationException"
ACCESS_DENIED = "AccessDeniedException"
THROUGHPUT_EXCEEDED = "ProvisionedThroughputExceededException"
INVALID_PARAMETER_VALUE = "InvalidParameterValueException"

# A Lambda authorizer whose invocation fails with exactly this error message is API Gateway's
# 401 (any other failure a 500): ``raise Exception("Unauthorized")`` in AWS's samples.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-lambda-authorizer-output.html
AUTHORIZER_UNAUTHORIZED = "Unauthorized"


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
