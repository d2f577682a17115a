"""KPL aggregation (aws-kinesis-agg): the one de-aggregation, and the library imported without
its side effect on ``sys.path``.

Importing ``aws_kinesis_agg.aggregator`` or ``.deaggregator`` inserts the package's own folder and
site-packages at the front of ``sys.path`` (so that its generated ``kpl_pb2`` imports as a
top-level module). In Lambda that puts the layer ahead of the function's own code, and anywhere it
hides ``PYTHONPATH``. Every import of the library goes through here: the path is restored once the
modules (and ``kpl_pb2``) are loaded.

:func:`deaggregate` is what the consumer runtime decodes records with and what the twin's event
filtering (enhanced fan-out applies ``data`` filters to user records) reads, so both see the same
user records.
"""

from __future__ import annotations

import base64
import sys
from dataclasses import dataclass

_path = list(sys.path)
try:
    from aws_kinesis_agg.aggregator import AggRecord, RecordAggregator
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records
finally:
    sys.path[:] = _path
del _path

__all__ = ["AggRecord", "KplError", "RecordAggregator", "UserRecord", "deaggregate",
           "iter_deaggregate_records"]


class KplError(ValueError):
    """Data with the KPL magic that is not a valid aggregate (digest, protobuf)."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One user record of an aggregated Kinesis record."""

    partition_key: str
    data: bytes
    sub_sequence_number: int


def deaggregate(data: bytes, *, partition_key: str = "", sequence_number: str = "0",
                approximate_arrival_timestamp: float = 0.0) -> list[UserRecord]:
    """The user records of a KPL-aggregated record's raw data, in order.

    Raises :class:`KplError` when the data is not a valid aggregate: the library then hands the
    record back as itself (bad digest or protobuf) or raises whatever protobuf raises.
    """
    shape = {"kinesis": {
        "kinesisSchemaVersion": "1.0", "data": base64.b64encode(data).decode("ascii"),
        "partitionKey": partition_key, "sequenceNumber": sequence_number,
        "approximateArrivalTimestamp": approximate_arrival_timestamp}}
    try:
        subs = list(iter_deaggregate_records([shape]))
    except Exception as exc:  # the library raises whatever protobuf raises
        raise KplError(f"KPL de-aggregation failed: {exc}") from exc
    if not subs or any(not s["kinesis"].get("aggregated") for s in subs):
        raise KplError("KPL magic present but the aggregated record is corrupt")
    # aws-kinesis-agg hands sub-record data back re-encoded as base64 *bytes*.
    return [UserRecord(str(s["kinesis"]["partitionKey"]), base64.b64decode(s["kinesis"]["data"]),
                       int(s["kinesis"]["subSequenceNumber"])) for s in subs]
