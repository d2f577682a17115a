"""aws-kinesis-agg (KPL aggregation), imported without its side effect on ``sys.path``.

Importing ``aws_kinesis_agg.aggregator`` or ``.deaggregator`` inserts the package's own folder and
site-packages at the front of ``sys.path`` (so that its generated ``kpl_pb2`` imports as a
top-level module). In Lambda that puts the layer ahead of the function's own code, and anywhere it
hides ``PYTHONPATH``. Every import of the library goes through here: the path is restored once the
modules (and ``kpl_pb2``) are loaded.
"""

from __future__ import annotations

import sys

_path = list(sys.path)
try:
    from aws_kinesis_agg.aggregator import AggRecord, RecordAggregator
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records
finally:
    sys.path[:] = _path
del _path

__all__ = ["AggRecord", "RecordAggregator", "iter_deaggregate_records"]
