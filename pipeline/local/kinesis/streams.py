"""A stream (its shards and their hash key ranges) and its enhanced fan-out consumers. No I/O."""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any

from .shards import MAX_HASH_KEY, Shard

RETENTION_HOURS = 24


@dataclass
class Consumer:
    """An enhanced fan-out consumer; its ARN ends with ``:<creation epoch seconds>`` as on AWS."""

    name: str
    arn: str
    stream_arn: str
    created: int  # epoch seconds
    status: str = "ACTIVE"  # CREATING until ``active_at`` (KinesisBackend.consumer_activation_s)
    active_at: float = 0.0  # backend clock


class Stream:
    """A stream: shards keyed by id (open and closed), consumers keyed by name."""

    def __init__(self, name: str, arn: str, mode: str, shard_count: int, created: float) -> None:
        self.name, self.arn, self.mode, self.created = name, arn, mode, created
        self.status = "ACTIVE"  # AWS: CREATING for a few seconds; the twin: ready at once
        self.retention_hours = RETENTION_HOURS
        self.consumers: dict[str, Consumer] = {}
        self.tags: dict[str, str] = {}
        self.shards: dict[str, Shard] = {}
        # the open shards sorted by starting hash key, and those keys: one attribute, replaced
        # whole, so a put in another thread never sees half a reshard
        self._routing: tuple[list[Shard], list[int]] = ([], [])
        self._lock = threading.Lock()
        # AWS splits the key space evenly: shard i starts at i * floor(2^128 / n).
        step = (MAX_HASH_KEY + 1) // shard_count
        for i in range(shard_count):
            end = MAX_HASH_KEY if i == shard_count - 1 else (i + 1) * step - 1
            self._add(Shard(i, i * step, end, created))

    def _add(self, shard: Shard) -> None:
        self.shards[shard.shard_id] = shard
        shards = sorted((s for s in self.shards.values() if s.is_open),
                        key=lambda s: s.starting_hash)
        self._routing = (shards, [s.starting_hash for s in shards])

    def shard_for(self, hash_key: int) -> Shard:
        """The open shard whose inclusive range holds *hash_key* (the open ranges tile 0..2^128-1)."""
        shards, starts = self._routing
        return shards[bisect.bisect_right(starts, hash_key) - 1]

    @property
    def open_shards(self) -> list[Shard]:
        return list(self._routing[0])

    def split(self, parent: Shard, new_start: int, now: float) -> tuple[Shard, Shard]:
        with self._lock:
            parent.close()
            index = len(self.shards)
            low = Shard(index, parent.starting_hash, new_start - 1, now,
                        parent_shard_id=parent.shard_id)
            high = Shard(index + 1, new_start, parent.ending_hash, now,
                         parent_shard_id=parent.shard_id)
            self._add(low)
            self._add(high)
        return low, high

    def children_of(self, parent: Shard) -> list[dict[str, Any]]:
        return [{"ShardId": s.shard_id, "ParentShards": [parent.shard_id],
                 "HashKeyRange": hash_key_range(s)}
                for s in self.shards.values() if s.parent_shard_id == parent.shard_id]


def hash_key_range(shard: Shard) -> dict[str, str]:
    return {"StartingHashKey": str(shard.starting_hash), "EndingHashKey": str(shard.ending_hash)}
