"""The twin's own Kinesis Data Streams, in moto's shape.

- :mod:`.model` (:class:`KinesisBackend`), :mod:`.streams`, :mod:`.shards`, :mod:`.iterators`:
  state and logic, no I/O;
- :mod:`.exceptions`: one base (:class:`KinesisError`), AWS's codes, statuses and messages;
- :mod:`.wire` and :mod:`.responses`: JSON 1.1 and CBOR 1.1 requests and answers;
- :mod:`.wsgi`: the app on the twin's AWS port, and the router in front of moto.

Each :class:`~pipeline.local.services.AwsServices` owns one backend; nothing is process-global.
"""

from __future__ import annotations

from .exceptions import KinesisError
from .model import KinesisBackend
from .responses import KinesisResponses
from .shards import Record, Shard, ShardWatch
from .streams import Consumer, Stream

__all__ = ["Consumer", "KinesisBackend", "KinesisError", "KinesisResponses", "Record", "Shard",
           "ShardWatch", "Stream"]
