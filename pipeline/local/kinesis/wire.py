"""The two encodings Kinesis speaks: JSON 1.1 and CBOR 1.1. Bytes in, Python values out.

- JSON (``application/x-amz-json-1.1``, boto3, the CLI, most SDKs): blobs are base64 text,
  timestamps epoch seconds (a number).
- CBOR (``application/x-amz-cbor-1.1``, the Java SDK's and so the KCL's default for Kinesis):
  blobs are byte strings, timestamps CBOR tag 1 around epoch **milliseconds** (the AWS SDK for
  Java writes ``Instant.toEpochMilli()`` under tag 1, unlike RFC 8949's seconds); a tag-1 value
  too large to be seconds is read as milliseconds, so either kind of client works.

Errors are a map ``{"__type": code, "message": text}`` in the request's encoding.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import cbor2
import orjson

from .exceptions import KinesisError, SerializationError

JSON = "application/x-amz-json-1.1"
CBOR = "application/x-amz-cbor-1.1"
_MILLIS_FROM = 100_000_000_000  # a tag-1 value above this is milliseconds (seconds: year 5138)


class Timestamp:
    """A timestamp member of a response (epoch seconds), encoded per protocol."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def decode(body: bytes, protocol: str) -> dict[str, Any]:
    """The request's members (blobs still base64 text under JSON, see :func:`blob`)."""
    if not body:
        return {}
    try:
        if protocol == CBOR:
            value = cbor2.loads(body, semantic_decoders={1: _tag_timestamp})
        else:
            value = orjson.loads(body)
    except (orjson.JSONDecodeError, cbor2.CBORDecodeError, ValueError) as exc:
        raise SerializationError(_not_a_map(protocol)) from exc
    if not isinstance(value, dict):
        raise SerializationError(_not_a_map(protocol))
    return value


def _not_a_map(protocol: str) -> str:
    if protocol == CBOR:  # e.g. JSON text sent as CBOR: a CBOR text string, not a map
        return "Start of structure or map found where not expected."
    return "Unexpected character found when decoding the request: not a JSON object."


def _tag_timestamp(value: Any, *_: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("a timestamp is a number")
    return value / 1000 if abs(value) > _MILLIS_FROM else float(value)


def blob(value: Any, member: str) -> bytes:
    """A blob member: bytes under CBOR, base64 text under JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise SerializationError(f"Value of {member} is not valid base64.") from exc
    raise SerializationError(f"Value of {member} is not a blob.")


def timestamp(value: Any, member: str) -> float | None:
    """A timestamp member as epoch seconds (JSON: a number; CBOR: already decoded)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise SerializationError(f"Value of {member} is not a timestamp.")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Timestamp):
        return value.seconds
    raise TypeError(f"cannot encode {type(value).__name__}")


def _cbor_default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    if isinstance(value, Timestamp):
        encoder.encode(cbor2.CBORTag(1, round(value.seconds * 1000)))
        return
    raise cbor2.CBOREncodeTypeError(f"cannot encode {type(value).__name__}")


def encode(value: dict[str, Any], protocol: str) -> bytes:
    """A response body in the request's encoding (None members are left out)."""
    members = {k: v for k, v in value.items() if v is not None}
    if protocol == CBOR:
        return cbor2.dumps(members, default=_cbor_default)
    return orjson.dumps(members, default=_json_default)


def encode_error(error: KinesisError, protocol: str) -> bytes:
    return encode({"__type": error.code, "message": error.message}, protocol)
