"""The per-container caches: one object per process, each cache filled once, one reset."""

from __future__ import annotations

import threading

import pytest

from pipeline.runtime import container as containers
from pipeline.runtime.connections import connections_client
from pipeline.runtime.container import PRUNED_MEMORY, container, reset


def test_one_container_per_process_until_reset() -> None:
    first = container()
    assert container() is first
    reset()
    assert container() is not first


def test_a_cache_entry_is_made_once_under_concurrency() -> None:
    reset()
    made: list[int] = []
    start = threading.Barrier(8)

    def make() -> int:
        made.append(1)
        return len(made)

    def use() -> None:
        start.wait()
        container().shared(container().connections, "k", make)  # type: ignore[arg-type]

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [1]
    reset()


def test_the_accessors_share_through_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    reset()
    monkeypatch.setenv("CONNECTIONS_ENDPOINT_URL", "https://abc.execute-api.us-east-1.amazonaws.com/dev")
    client = connections_client()
    assert connections_client() is client
    assert container().connections == {client.endpoint_url: client}
    reset()
    assert connections_client() is not client
    reset()


def test_the_prune_memory_is_bounded() -> None:
    reset()
    box = containers.container()
    for i in range(PRUNED_MEMORY + 1):
        box.remember_pruned(f"c{i}")
    assert not box.was_pruned("c0") and box.was_pruned("c1") and box.was_pruned(f"c{PRUNED_MEMORY}")
    reset()
