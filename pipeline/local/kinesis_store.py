"""The twin's Kinesis write side: per-shard write limits and put notifications, as one object.

A :class:`KinesisStore` belongs to one moto Kinesis backend (:meth:`KinesisStore.attach`); the
moto patches (``patches/moto_kinesis.py``) ask it, on every put from any path (the gateway's
in-process calls or boto3 over HTTP), whether the shard admits the write, and tell it after each
stored record. Everything here is instance state: two stores never share limits or listeners.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from moto.core.exceptions import JsonRESTError

from pipeline.local.aws import (
    ACCOUNT_ID,
    KINESIS_BYTES_PER_SECOND,
    KINESIS_RECORDS_PER_SECOND,
    THROUGHPUT_EXCEEDED,
)
from pipeline.local.patches import moto_kinesis

PutListener = Callable[[str, str], None]  # (stream_name, shard_id)

# Re-exported: readers of a shard's records (the ESM source, tests).
records_after = moto_kinesis.records_after
last_sequence = moto_kinesis.last_sequence
data_size = moto_kinesis.data_size


class ThroughputExceeded(JsonRESTError):
    """AWS ``ProvisionedThroughputExceededException`` (HTTP 400)."""

    def __init__(self, stream_name: str, shard_id: str) -> None:
        super().__init__(
            THROUGHPUT_EXCEEDED,
            f"Rate exceeded for shard {shard_id} in stream {stream_name} under account "
            f"{ACCOUNT_ID}.",
        )


class ShardLimiter:
    """Sliding one-second window over a shard's writes (records and bytes). Sans-I/O."""

    __slots__ = ("_bytes", "_window")

    def __init__(self) -> None:
        self._window: deque[tuple[float, int]] = deque()
        self._bytes = 0

    def admit(self, now: float, size: int) -> bool:
        """Record the write and return True if it fits in the last second, else False."""
        window = self._window
        while window and window[0][0] <= now - 1.0:
            self._bytes -= window.popleft()[1]
        if (len(window) + 1 > KINESIS_RECORDS_PER_SECOND
                or self._bytes + size > KINESIS_BYTES_PER_SECOND):
            return False
        window.append((now, size))
        self._bytes += size
        return True


class KinesisStore:
    """Write limits (``--enforce-limits``) and put listeners of one Kinesis backend."""

    def __init__(self, *, enforce_limits: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        moto_kinesis.install()
        self.enforce_limits = enforce_limits
        self.clock = clock  # replaceable in tests
        self._listeners: list[PutListener] = []
        self._limiters: dict[tuple[str, str], ShardLimiter] = {}
        self._lock = threading.Lock()

    def attach(self, backend: Any) -> None:
        """Serve *backend*'s puts from now on (the backend is moto's, process-wide)."""
        moto_kinesis.attach(backend, self)

    def add_listener(self, listener: PutListener) -> None:
        """Call ``listener(stream_name, shard_id)`` after every stored record (from any thread)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: PutListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # --- called by the moto patches -------------------------------------------------------------
    def admit(self, stream_name: str, shard_id: str, size: int) -> None:
        """Raise :class:`ThroughputExceeded` when the shard's last second is full."""
        if not self.enforce_limits:
            return
        with self._lock:
            limiter = self._limiters.get((stream_name, shard_id))
            if limiter is None:
                limiter = self._limiters[(stream_name, shard_id)] = ShardLimiter()
            admitted = limiter.admit(self.clock(), size)
        if not admitted:
            raise ThroughputExceeded(stream_name, shard_id)

    def stored(self, stream_name: str, shard_id: str) -> None:
        """A record was stored: tell every listener."""
        for listener in list(self._listeners):
            listener(stream_name, shard_id)
