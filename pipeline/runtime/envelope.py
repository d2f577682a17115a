"""The envelope: the JSON document every stream record carries (docs/contracts.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NewType, cast

import orjson

ConnectionId = NewType("ConnectionId", str)
EventType = Literal["MESSAGE", "DISCONNECT", "SERVER"]
EVENT_TYPES: frozenset[str] = frozenset({"MESSAGE", "DISCONNECT", "SERVER"})


class EnvelopeError(ValueError):
    """The data is not a valid envelope (the message says which field is wrong)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One client frame (or server message) plus the Kinesis metadata of its record.

    ``sequence_number`` is the Kinesis record's; KPL sub-records share their parent's and are
    told apart by ``sub_sequence_number`` (``None`` for a plain record).
    """

    route_key: str
    event_type: EventType
    connection_id: ConnectionId
    request_id: str
    request_time_epoch: int
    body: str
    principal: str
    sequence_number: str
    sub_sequence_number: int | None
    partition_key: str
    approximate_arrival_timestamp: float
    message_id: str = ""
    stage: str = ""
    domain_name: str = ""
    source_ip: str = ""
    disconnect_status_code: int | None = None

    @property
    def arrival_ms(self) -> int:
        """Kinesis ``approximateArrivalTimestamp`` in epoch milliseconds."""
        return round(self.approximate_arrival_timestamp * 1000)

    def body_json(self) -> Any:
        """The body parsed as JSON; raises :class:`ValueError` when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"body is not JSON: {exc}") from exc

    def body_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or ``None`` when it is not JSON or not an object."""
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


def _str(doc: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = doc.get(name)
    if value is None:
        if required:
            raise EnvelopeError(f"missing field {name!r}")
        return ""
    if not isinstance(value, str):
        raise EnvelopeError(f"field {name!r} must be a string, got {type(value).__name__}")
    return value


def parse_envelope(
    data: bytes,
    *,
    sequence_number: str,
    partition_key: str,
    approximate_arrival_timestamp: float,
    sub_sequence_number: int | None = None,
) -> Envelope:
    """Parse envelope bytes (UTF-8 JSON) into an :class:`Envelope`; :class:`EnvelopeError` if bad."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EnvelopeError(f"not a JSON object: {type(doc).__name__}")
    event_type = _str(doc, "eventType", required=True)
    if event_type not in EVENT_TYPES:
        raise EnvelopeError(f"unknown eventType {event_type!r}")
    request_time = doc.get("requestTimeEpoch")
    if isinstance(request_time, str) and request_time.isdigit():
        request_time = int(request_time)  # tolerate a template that renders it quoted
    if not isinstance(request_time, int | float) or isinstance(request_time, bool):
        raise EnvelopeError("field 'requestTimeEpoch' must be a number (epoch ms)")
    body = doc.get("body", "")
    if not isinstance(body, str):
        # The contract says body is always a string; a producer that sent an object still
        # means that object, so re-serialize it rather than losing the record.
        body = orjson.dumps(body).decode()
    status = doc.get("disconnectStatusCode")
    return Envelope(
        route_key=_str(doc, "routeKey", required=True),
        event_type=cast(EventType, event_type),
        connection_id=ConnectionId(_str(doc, "connectionId", required=True)),
        request_id=_str(doc, "requestId", required=True),
        request_time_epoch=int(request_time),
        body=body,
        principal=_str(doc, "principal"),
        sequence_number=sequence_number,
        sub_sequence_number=sub_sequence_number,
        partition_key=partition_key,
        approximate_arrival_timestamp=approximate_arrival_timestamp,
        message_id=_str(doc, "messageId"),
        stage=_str(doc, "stage"),
        domain_name=_str(doc, "domainName"),
        source_ip=_str(doc, "sourceIp"),
        disconnect_status_code=int(status) if isinstance(status, int | float) else None,
    )
