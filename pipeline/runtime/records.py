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

from .envelope import Envelope, EnvelopeError, parse_envelope
from .exceptions import UndecodableRecord

# https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md
KPL_MAGIC = b"\xf3\x89\x9a\xc2"


def is_aggregated(data: bytes) -> bool:
    """True when raw record data starts with the KPL aggregation magic."""
    return data.startswith(KPL_MAGIC)


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
    subs = _deaggregate(record, seq)
    envelopes = []
    for sub in subs:
        sub_kinesis = sub["kinesis"]
        # aws-kinesis-agg hands sub-record data back re-encoded as base64 *bytes*.
        data = base64.b64decode(sub_kinesis["data"])
        envelopes.append(
            _parse(data, seq, str(sub_kinesis["partitionKey"]), arrival,
                   int(sub_kinesis["subSequenceNumber"]))
        )
    return envelopes


def _deaggregate(record: Mapping[str, Any], seq: str) -> list[dict[str, Any]]:
    # aws-kinesis-agg (and protobuf) on the first aggregated record, through .kpl as always:
    # a consumer that only sees plain records does not pay for it at cold start.
    from pipeline.runtime.kpl import iter_deaggregate_records

    try:
        subs = list(iter_deaggregate_records([dict(record)]))
    except Exception as exc:  # the library raises whatever protobuf raises
        raise UndecodableRecord(seq, f"KPL de-aggregation failed: {exc}") from exc
    # The library falls back to returning the record itself when the digest or protobuf is bad
    # (and prints to stderr when a sub-record is broken): treat both as undecodable.
    if not subs or any(not s["kinesis"].get("aggregated") for s in subs):
        raise UndecodableRecord(seq, "KPL magic present but the aggregated record is corrupt")
    return subs


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
