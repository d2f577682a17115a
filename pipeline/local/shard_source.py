"""The event source mappings' side of the AWS services: the Kinesis shard source and the SQS
on-failure sink, over the shared moto backends (``pipeline.local.esm.interfaces``)."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.local.esm.interfaces import Skipped, StoredRecord
from pipeline.local.kinesis_store import last_sequence, records_after

if TYPE_CHECKING:
    from pipeline.local.services import AwsServices


class MotoShardSource:
    """The ESM engine's read side of the stream, over the shared Kinesis backend."""

    def __init__(self, services: AwsServices, loop: asyncio.AbstractEventLoop) -> None:
        self._backend = services.kinesis
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._waiters: dict[tuple[str, str], set[_Waiter]] = defaultdict(set)
        self._store = services.store
        self._store.add_listener(self._on_put)

    def close(self) -> None:
        self._store.remove_listener(self._on_put)

    def _stream(self, stream_arn: str) -> Any:
        return self._backend.describe_stream(stream_arn=stream_arn, stream_name=None)

    def stream_arn_of(self, event_source_arn: str) -> str:
        return event_source_arn.split("/consumer/", 1)[0]

    def shard_ids(self, stream_arn: str) -> list[str]:
        return [s.shard_id for s in self._stream(stream_arn).shards.values() if s.is_open]

    def read(
        self, stream_arn: str, shard_id: str, *, after_sequence: str | None,
        at_timestamp: float | None, limit: int,
    ) -> list[StoredRecord]:
        shard = self._stream(stream_arn).get_shard(shard_id)
        if after_sequence is not None:
            after = int(after_sequence)
        elif at_timestamp is not None:
            after = shard.get_sequence_number_at(at_timestamp)
        else:
            after = 0
        return [_stored(r) for r in records_after(shard, after, limit)]

    def latest_sequence(self, stream_arn: str, shard_id: str) -> str | None:
        last = last_sequence(self._stream(stream_arn).get_shard(shard_id))
        return str(last) if last else None

    async def wait_for_records(
        self, stream_arn: str, shard_id: str, after_sequence: str | None, timeout_s: float,
        wanted: Callable[[StoredRecord], bool] | None = None,
    ) -> Skipped | None:
        """Wait for a record after ``after_sequence``; with ``wanted``, for one it accepts.

        Every put wakes the waiters of its shard; a waiter with a filter looks at the new
        records first (decoded once for all mappings, see :func:`_stored`) and stays asleep
        while the filter rejects them, so a frame costs a mapping it does not concern a filter
        check, not a reader's wake-up, read and wait: with N consumers each frame wakes the
        one or two readers it is for, not N. The answer says how far it skipped.
        """
        shard = self._stream(stream_arn).get_shard(shard_id)
        waiter = _Waiter(self._loop.create_future(), shard,
                         int(after_sequence) if after_sequence is not None else 0, wanted)
        if last_sequence(shard) > waiter.after:
            waiter.look()
            if waiter.future.done():
                return waiter.skipped()
        key = (stream_arn.rsplit("/", 1)[-1], shard_id)
        self._waiters[key].add(waiter)
        # A bare future and a timer rather than wait_for (which adds a waiter future, a done
        # callback and a loop pass): a put wakes the reader in the very next pass.
        timer = self._loop.call_later(timeout_s, _settle, waiter.future)
        try:
            await waiter.future
        finally:
            timer.cancel()
            self._waiters[key].discard(waiter)
        return waiter.skipped()

    def _on_put(self, stream_name: str, shard_id: str) -> None:
        if threading.get_ident() == self._loop_thread:
            self._wake(stream_name, shard_id)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, stream_name, shard_id)

    def _wake(self, stream_name: str, shard_id: str) -> None:
        for waiter in list(self._waiters.get((stream_name, shard_id), ())):
            waiter.look()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# A waiter looks at most this many new records per put before it wakes its reader anyway
# (which then reads and filters them itself): bounds the work one put can cause.
LOOK_LIMIT = 1000


@dataclass(eq=False)
class _Waiter:
    """One reader waiting on a shard: its future, position and filter."""

    future: asyncio.Future[None]
    shard: Any
    after: int
    wanted: Callable[[StoredRecord], bool] | None
    count: int = 0  # records skipped (rejected by ``wanted``)

    def look(self) -> None:
        """Wake the reader if a record after its position is wanted (or there is no filter)."""
        if self.future.done():
            return
        if self.wanted is None:
            _settle(self.future)
            return
        records = records_after(self.shard, self.after, LOOK_LIMIT)
        for record in records:
            try:
                wanted = self.wanted(_stored(record))
            except Exception:  # the reader filters again, and logs what goes wrong
                wanted = True
            if wanted:
                _settle(self.future)
                return
            self.after = record.sequence_number
            self.count += 1
        if len(records) >= LOOK_LIMIT:
            _settle(self.future)

    def skipped(self) -> Skipped | None:
        return Skipped(str(self.after), self.count) if self.count else None


_DECODED = "_twin_stored"  # the attribute of a moto record that holds its StoredRecord


def _stored(record: Any) -> StoredRecord:
    """The record as the mappings see it, decoded once: every mapping of the stream reads the
    same moto record object, and a stored record never changes (StoredRecord is frozen)."""
    stored: StoredRecord | None = record.__dict__.get(_DECODED)
    if stored is None:
        stored = StoredRecord(
            sequence_number=str(record.sequence_number),
            partition_key=record.partition_key,
            data=base64.b64decode(record.data),
            approximate_arrival_timestamp=float(record.created_at),
            explicit_hash_key=record.explicit_hash_key or None,
        )
        record.__dict__[_DECODED] = stored
    return stored


class SqsFailureSink:
    """The ESM on-failure destination: SQS SendMessage on the shared backend."""

    def __init__(self, services: AwsServices) -> None:
        self._sqs = services.sqs

    def send(self, destination_arn: str, message: dict[str, Any]) -> None:
        queue_name = destination_arn.rsplit(":", 1)[-1]
        self._sqs.send_message(queue_name, orjson.dumps(message).decode())
