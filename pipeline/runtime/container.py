"""What one Lambda container keeps between invocations, in one object built once per process.

A container reuses its @connections clients, rosters, page writers, idempotency store and shard
count across invocations; it remembers the gone connections it already pruned and when it last
published the ``OpenConnections`` gauge. All of it lives on :func:`container`'s object, each
cache filled under the one lock (:meth:`Container.shared`); :func:`reset` starts afresh (tests).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from .connections import ConnectionsClient
    from .fanout import PageWriter
    from .roster import Roster
    from .shardcount import OpenShardCount

T = TypeVar("T")
PRUNED_MEMORY = 10_000  # gone connections remembered (each is pruned once per container)


@dataclass
class Container:
    """The per-process caches, keyed by endpoint, table or stream name."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: dict[str, ConnectionsClient] = field(default_factory=dict)
    rosters: dict[str, Roster] = field(default_factory=dict)
    page_writers: dict[str, PageWriter] = field(default_factory=dict)
    idempotency_layers: dict[str, DynamoDBPersistenceLayer] = field(default_factory=dict)
    shard_counts: dict[str, OpenShardCount] = field(default_factory=dict)
    presence_published: dict[str, float] = field(default_factory=dict)  # table -> monotonic s
    _pruned: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def shared(self, cache: dict[str, T], key: str, make: Callable[[], T]) -> T:
        """``cache[key]``, made once (under the lock) on first use."""
        with self.lock:
            found = cache.get(key)
            if found is None:
                found = cache[key] = make()
            return found

    def was_pruned(self, connection_id: str) -> bool:
        """Whether this container already pruned the gone connection."""
        return connection_id in self._pruned

    def remember_pruned(self, connection_id: str) -> None:
        """Remember a pruned connection (the oldest are forgotten past :data:`PRUNED_MEMORY`)."""
        with self.lock:
            self._pruned[connection_id] = None
            while len(self._pruned) > PRUNED_MEMORY:
                self._pruned.popitem(last=False)


_container = Container()


def container() -> Container:
    """This process's container."""
    return _container


def reset() -> None:
    """Forget every cache: the next use builds them again (tests)."""
    global _container
    _container = Container()
