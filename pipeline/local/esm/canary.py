"""The start-up canary: proof that every mapping reads every shard before the twin says ready.

A twin that prints ``TWIN-READY`` and then never runs a consumer is worse than one that fails to
start. So, once the mappings run, the twin puts one canary record on every shard of every stream
(``ExplicitHashKey`` = the shard's starting hash key) and waits until each mapping's reader of each
shard has read it back through the very path it reads frames with (source read, decode, route).
Readers recognise the canary by its partition key, a fresh random one per start (no client record
can carry it), drop it before filters and batching, and tell the :class:`Canary`; the functions
never see it. The records stay on the stream (Kinesis deletes nothing): a client reading the stream
with GetRecords sees one canary per shard (docs/fidelity.md). No I/O here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

import orjson

PREFIX = "twin-canary-"


class Canary:
    """The readers a start-up waits for, and which of them have read their canary."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key or PREFIX + uuid.uuid4().hex
        self._waiting: dict[tuple[str, str], str] = {}  # (mapping, shard) -> stream ARN
        self._seen: set[tuple[str, str]] = set()
        self._all_seen: asyncio.Event | None = None

    def record(self) -> bytes:
        """The canary's data (JSON, so a reader's decoding path runs on it as on a frame)."""
        return orjson.dumps({"twinCanary": self.key})

    def expect(self, mapping: str, stream_arn: str, shard_ids: Iterable[str]) -> None:
        """*mapping* must read its canary on each of *shard_ids*."""
        for shard_id in shard_ids:
            self._waiting[(mapping, shard_id)] = stream_arn

    def streams(self) -> set[str]:
        """The streams some mapping reads (the ones that need a canary)."""
        return set(self._waiting.values())

    def is_canary(self, partition_key: str) -> bool:
        return partition_key == self.key

    def seen(self, mapping: str, shard_id: str) -> None:
        """A reader read the canary (called by the readers; idempotent)."""
        if (mapping, shard_id) in self._waiting:
            self._seen.add((mapping, shard_id))
            if self._all_seen is not None and not self.missing():
                self._all_seen.set()

    def missing(self) -> list[tuple[str, str]]:
        """(mapping, shard) pairs whose reader has not read the canary yet, sorted."""
        return sorted(set(self._waiting) - self._seen)

    async def wait(self, timeout_s: float) -> list[tuple[str, str]]:
        """Wait until every expected reader read it; return the pairs still missing."""
        if self.missing():
            self._all_seen = asyncio.Event()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._all_seen.wait()
            except TimeoutError:
                pass
        return self.missing()
