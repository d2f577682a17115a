"""The twin's moto dispatcher answers as moto's does, and lists moto's folder once per host."""

from __future__ import annotations

from collections.abc import Iterable

import moto.backends
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from pipeline.local.moto_dispatch import HOSTS_REMEMBERED, RememberingDispatcher

HOSTS = ["dynamodb.us-east-1.amazonaws.com", "sqs.eu-west-1.amazonaws.com",
         "secretsmanager.us-east-1.amazonaws.com", "dynamodb", "moto_api", None, "example.org"]


def test_each_host_gets_moto_s_backend_and_the_folder_is_listed_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    moto_s, ours = DomainDispatcherApplication(create_backend_app), RememberingDispatcher()
    listings = []
    original = moto.backends.list_of_moto_modules

    def counted() -> Iterable[str]:
        listings.append(1)
        return original()

    monkeypatch.setattr(moto.backends, "list_of_moto_modules", counted)
    expected = [moto_s.get_backend_for_host(h) for h in HOSTS]
    assert expected[:4] == ["dynamodb", "sqs", "secretsmanager", "dynamodb"]
    listings.clear()
    assert [ours.get_backend_for_host(h) for h in HOSTS] == expected
    first = len(listings)
    assert first > 0
    assert [ours.get_backend_for_host(h) for h in HOSTS * 3] == expected * 3
    assert len(listings) == first  # answered from memory


def test_hosts_from_strangers_cannot_grow_the_memory() -> None:
    ours = RememberingDispatcher()
    hosts = [f"h{i}.example.org" for i in range(HOSTS_REMEMBERED + 50)]
    assert all(ours.get_backend_for_host(h) is None for h in hosts)
    assert ours.get_backend_for_host("dynamodb.us-east-1.amazonaws.com") == "dynamodb"
    assert len(ours._backends) == HOSTS_REMEMBERED
