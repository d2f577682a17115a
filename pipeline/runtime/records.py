"""From a Lambda Kinesis event record to envelopes: base64, KPL de-aggregation, JSON.

A plain record yields one envelope. A KPL-aggregated record (aws-kinesis-agg format) yields one
envelope per user record; they all carry the parent's sequence number (Lambda checkpoints whole
Kinesis records, never sub-records) and their own ``sub_sequence_number``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from pipeline.aws.kinesis import is_aggregated

from .envelope import Envelope, EnvelopeError, parse_envelope
from .exceptions import UndecodableRecord


def decode_record(record: Mapping[str, Any]) -> list[Envelope]:
    """Decode one Lambda Kinesis event record into its envelope(s).

    Raises :class:`UndecodableRecord` for bad base64, a KPL record whose protobuf or digest is
    broken, or data that is not an envelope. Never returns an empty list.
    """
    kinesis = record.get("kinesis")
    if not isinstance(kinesis, Mapping):
        raise UndecodableRecord("?", "no 'kinesis' object in the record")
    seq = str(kinesis.get("sequenceNumber", "?"))
    partition_key = str(kinesis.get("partitionKey", ""))
    try:
        arrival = float(kinesis.get("approximateArrivalTimestamp", 0.0))
        raw = base64.b64decode(kinesis.get("data", ""), validate=True)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise UndecodableRecord(seq, f"bad data/base64: {exc}") from exc
    if not is_aggregated(raw):
        return [_parse(raw, seq, partition_key, arrival, None)]
    # aws-kinesis-agg (and protobuf) on the first aggregated record: a consumer that only sees
    # plain records does not pay for it at cold start.
    from pipeline.aws.kpl import KplError, deaggregate

    try:
        users = deaggregate(raw, partition_key=partition_key, sequence_number=seq,
                            approximate_arrival_timestamp=arrival)
    except KplError as exc:
        raise UndecodableRecord(seq, str(exc)) from exc
    return [_parse(user.data, seq, user.partition_key, arrival, user.sub_sequence_number)
            for user in users]


def _parse(
    data: bytes, seq: str, partition_key: str, arrival: float, sub: int | None
) -> Envelope:
    try:
        return parse_envelope(
            data,
            sequence_number=seq,
            partition_key=partition_key,
            approximate_arrival_timestamp=arrival,
            sub_sequence_number=sub,
        )
    except EnvelopeError as exc:
        where = "" if sub is None else f"sub-record {sub}: "
        raise UndecodableRecord(seq, f"{where}not an envelope: {exc}") from exc
