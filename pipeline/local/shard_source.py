"""The event source mappings' side of the AWS services: the Kinesis shard source (over the
twin's own Kinesis model) and the SQS on-failure sink (over moto's SQS backend), implementing
``pipeline.local.esm.interfaces``."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.aws.arns import KinesisSourceArn
from pipeline.local.esm.interfaces import Skipped, StoredRecord
from pipeline.local.kinesis import KinesisBackend, Shard, ShardWatch, Stream

if TYPE_CHECKING:
    from pipeline.local.services import AwsServices


class KinesisShardSource:
    """The ESM engine's read side of a stream, over a :class:`KinesisBackend`.

    The model's records are the engine's :class:`StoredRecord`: stored decoded and immutable,
    so every mapping of the stream reads the same objects, with no decoding per read.
    """

    def __init__(self, kinesis: KinesisBackend | AwsServices,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._backend = kinesis if isinstance(kinesis, KinesisBackend) else kinesis.kinesis
        # the loop the readers wait in (None: the running loop of the first wait)
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None
        self._waiters: dict[tuple[str, str], set[_Waiter]] = defaultdict(set)
        self._backend.add_listener(self._on_put)

    def close(self) -> None:
        self._backend.remove_listener(self._on_put)

    def _stream(self, stream_arn: str) -> Stream:
        return self._backend.stream(arn=stream_arn)

    def _shard(self, stream_arn: str, shard_id: str) -> Shard:
        return self._backend.shard(self._stream(stream_arn), shard_id)

    def stream_arn_of(self, event_source_arn: str) -> str:
        return KinesisSourceArn.parse(event_source_arn).stream_arn

    def shard_ids(self, stream_arn: str) -> list[str]:
        return [s.shard_id for s in self._stream(stream_arn).open_shards]

    def read(
        self, stream_arn: str, shard_id: str, *, after_sequence: str | None,
        at_timestamp: float | None, limit: int,
    ) -> list[StoredRecord]:
        shard = self._shard(stream_arn, shard_id)
        if after_sequence is not None:
            after = int(after_sequence)
        elif at_timestamp is not None:
            after = shard.position_at(at_timestamp)
        else:
            after = shard.starting_sequence - 1
        return shard.after(after, limit)

    def latest_sequence(self, stream_arn: str, shard_id: str) -> str | None:
        newest = self._shard(stream_arn, shard_id).newest()
        return newest.sequence_number if newest is not None else None

    async def wait_for_records(
        self, stream_arn: str, shard_id: str, after_sequence: str | None, timeout_s: float,
        wanted: Callable[[StoredRecord], bool] | None = None,
    ) -> Skipped | None:
        """Wait for a record after ``after_sequence``; with ``wanted``, for one it accepts.

        Every put wakes the waiters of its shard; a waiter with a filter looks at the new
        records first (a :class:`ShardWatch`) and stays asleep while the filter rejects them, so
        a frame costs a mapping it does not concern a filter check, not a reader's wake-up,
        read and wait: with N consumers each frame wakes the one or two readers it is for, not
        N. The answer says how far it skipped.
        """
        if self._loop is None:
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        shard = self._shard(stream_arn, shard_id)
        after = int(after_sequence) if after_sequence is not None else shard.starting_sequence - 1
        waiter = _Waiter(self._loop.create_future(), ShardWatch(shard, after, wanted))
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
        if self._loop is None:
            return  # no reader has waited yet
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


@dataclass(eq=False)
class _Waiter:
    """One reader waiting on a shard: its future and its watch (position and filter)."""

    future: asyncio.Future[None]
    watch: ShardWatch

    def look(self) -> None:
        if not self.future.done() and self.watch.look():
            _settle(self.future)

    def skipped(self) -> Skipped | None:
        watch = self.watch
        return Skipped(str(watch.after), watch.skipped) if watch.skipped else None


class SqsFailureSink:
    """The ESM on-failure destination: SQS SendMessage on moto's backend."""

    def __init__(self, services: AwsServices) -> None:
        self._sqs = services.sqs

    def send(self, destination_arn: str, message: dict[str, Any]) -> None:
        queue_name = destination_arn.rsplit(":", 1)[-1]
        self._sqs.send_message(queue_name, orjson.dumps(message).decode())
