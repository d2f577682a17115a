"""Kinesis errors, as AWS answers them: one base, one subclass per AWS error code.

Every error carries AWS's code (the wire ``__type``), the HTTP status and the message::

    KinesisError                        (pipeline.local.errors.TwinError)
    ├── ResourceNotFoundError           ResourceNotFoundException
    ├── ResourceInUseError              ResourceInUseException
    ├── InvalidArgumentError            InvalidArgumentException
    ├── LimitExceededError              LimitExceededException
    ├── ThroughputExceededError         ProvisionedThroughputExceededException
    ├── ExpiredIteratorError            ExpiredIteratorException
    ├── ValidationError                 ValidationException
    ├── SerializationError              SerializationException
    └── UnknownOperationError           UnknownOperationException

The messages follow what Kinesis returns (botocore's service model names the codes; the texts are
AWS's where they are known, see docs/fidelity.md for the ones not yet recorded from AWS).
"""

from __future__ import annotations

import time

from pipeline.aws.errors import SERIALIZATION, THROUGHPUT_EXCEEDED, UNKNOWN_OPERATION, VALIDATION
from pipeline.local.errors import TwinError


class KinesisError(TwinError):
    """An error Kinesis answers with: ``code`` (``__type``), HTTP ``status`` and ``message``."""

    code = "InternalFailure"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ResourceNotFoundError(KinesisError):
    code = "ResourceNotFoundException"

    @classmethod
    def stream(cls, name: str, account: str) -> ResourceNotFoundError:
        return cls(f"Stream {name} under account {account} not found.")

    @classmethod
    def shard(cls, shard_id: str, stream: str, account: str) -> ResourceNotFoundError:
        return cls(f"Shard {shard_id} in stream {stream} under account {account} "
                   "does not exist")

    @classmethod
    def consumer(cls, what: str, account: str) -> ResourceNotFoundError:
        return cls(f"Consumer {what} under account {account} not found.")


class ResourceInUseError(KinesisError):
    code = "ResourceInUseException"


class InvalidArgumentError(KinesisError):
    code = "InvalidArgumentException"


class LimitExceededError(KinesisError):
    code = "LimitExceededException"


class ThroughputExceededError(KinesisError):
    code = THROUGHPUT_EXCEEDED

    def __init__(self, stream: str, shard_id: str, account: str) -> None:
        super().__init__(f"Rate exceeded for shard {shard_id} in stream {stream} under "
                         f"account {account}.")


class ExpiredIteratorError(KinesisError):
    code = "ExpiredIteratorException"

    def __init__(self, issued: float, now: float, tolerated_ms: int) -> None:
        super().__init__(
            f"Iterator expired. The iterator was created at time {_java_date(issued)} while "
            f"right now it is {_java_date(now)} which is further in the future than the "
            f"tolerated delay of {tolerated_ms} milliseconds.")


class ValidationError(KinesisError):
    code = VALIDATION

    @classmethod
    def constraint(cls, value: object, member: str, constraint: str) -> ValidationError:
        """AWS's input validation message, for one member."""
        return cls(f"1 validation error detected: Value '{value}' at '{member}' failed to "
                   f"satisfy constraint: Member must {constraint}")


class SerializationError(KinesisError):
    code = SERIALIZATION


class UnknownOperationError(KinesisError):
    code = UNKNOWN_OPERATION


def _java_date(epoch: float) -> str:
    # Kinesis is a Java service: its messages print java.util.Date.toString(), in UTC.
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch))
