"""Errors raised by the consumer runtime.

One base, :class:`PipelineRuntimeError`::

    PipelineRuntimeError
    ├── UndecodableRecord        a stream record that is not a valid (aggregated) envelope
    ├── DeliveryError            a post to @connections failed for good (after bounded retries)
    ├── RosterError              the roster table could not be read or written
    ├── AwsCallError             an AWS JSON API answered an error (its code and HTTP status)
    └── SkippedAfterFailure      not processed: an earlier record of the same partition key failed
"""

from __future__ import annotations

import sys


class PipelineRuntimeError(Exception):
    """Base of every error the runtime raises on purpose."""


class UndecodableRecord(PipelineRuntimeError):
    """A Kinesis record that cannot be decoded into envelopes."""

    def __init__(self, sequence_number: str, reason: str) -> None:
        super().__init__(f"record {sequence_number}: {reason}")
        self.sequence_number = sequence_number
        self.reason = reason


class DeliveryError(PipelineRuntimeError):
    """A post to one or more connections failed after the bounded retries."""

    def __init__(self, failed: dict[str, str]) -> None:
        sample = ", ".join(f"{cid}: {why}" for cid, why in list(failed.items())[:5])
        super().__init__(f"{len(failed)} post(s) failed: {sample}")
        self.failed = failed


class RosterError(PipelineRuntimeError):
    """A roster read or write failed; ``code`` is the AWS error code when there is one."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code


class AwsCallError(PipelineRuntimeError):
    """An AWS JSON API call failed: ``code`` is AWS's error code (or the exception's name when
    there was no answer), ``status`` the HTTP status (0: no answer)."""

    def __init__(self, operation: str, code: str, status: int, message: str = "") -> None:
        super().__init__(f"{operation}: {status} {code}: {message}" if message
                         else f"{operation}: {status} {code}")
        self.operation = operation
        self.code = code
        self.status = status
        self.message = message


def aws_call_errors(*botocore_names: str) -> tuple[type[Exception], ...]:
    """What a call through the runtime's AWS client or an injected boto3 client raises on
    failure: :class:`AwsCallError`, and the named ``botocore.exceptions`` classes (e.g.
    ``"ClientError"``) once botocore is loaded. It is not imported for this: a botocore error
    can only come from a boto3 client, which loaded it (~7 ms of a cold start otherwise)."""
    errors = sys.modules.get("botocore.exceptions")
    if errors is None:
        return (AwsCallError,)
    return (AwsCallError, *(getattr(errors, name) for name in botocore_names))


class SkippedAfterFailure(PipelineRuntimeError):
    """Reported failed without being processed, to keep per-key order (retried later)."""

    def __init__(self, sequence_number: str, partition_key: str) -> None:
        super().__init__(
            f"record {sequence_number} not processed: an earlier record of partition key "
            f"{partition_key!r} failed in this batch"
        )
        self.sequence_number = sequence_number
        self.partition_key = partition_key
