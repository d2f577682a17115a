"""Consumers are folders: discovery and the typed settings model (``pipeline/registry.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline import registry
from pipeline.aws import limits
from pipeline.registry import RegistryError, discover, load_all, load_spec


def add(root: Path, name: str, settings: dict[str, object] | None = None) -> Path:
    """A consumer folder ``root/name`` with echo's handler and ``settings`` (default: one route)."""
    folder = root / name
    folder.mkdir(parents=True)
    shutil.copy2(registry.CONSUMERS_DIR / "echo" / "handler.py", folder / "handler.py")
    (folder / "settings.json").write_text(json.dumps(settings or {"routes": [f"r_{name}"]}))
    return folder


def test_the_project_consumers_are_discovered_sorted_by_name() -> None:
    assert discover() == ("broadcast", "chat", "echo", "fallback", "fanout", "presence")
    specs = load_all()
    assert [s.name for s in specs] == list(discover())
    assert all(s.directory == registry.CONSUMERS_DIR / s.name for s in specs)
    assert all(s.handler.is_file() for s in specs)


def test_order_is_by_name_not_by_creation(tmp_path: Path) -> None:
    for name in ("zeta", "alpha", "mid_1", "mid_0"):
        add(tmp_path, name)
    assert discover(tmp_path) == ("alpha", "mid_0", "mid_1", "zeta")


def test_folders_that_are_not_consumers_are_skipped(tmp_path: Path) -> None:
    add(tmp_path, "scores")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"x")
    (tmp_path / "emptied").mkdir()
    hidden = add(tmp_path, ".scores.scaffold")  # new-consumer's staging folder, or a tool's
    (tmp_path / "README.md").write_text("a file, not a folder")
    assert discover(tmp_path) == ("scores",)
    assert hidden.is_dir()


@pytest.mark.parametrize(("present", "missing"), [("handler.py", "settings.json"),
                                                  ("settings.json", "handler.py")])
def test_half_a_consumer_is_one_line_naming_the_folder(
    tmp_path: Path, present: str, missing: str
) -> None:
    folder = add(tmp_path, "scores")
    (folder / missing).unlink()
    with pytest.raises(RegistryError) as caught:
        load_all(tmp_path)
    assert str(caught.value) == (f"{folder}: a consumer folder needs handler.py and "
                                 f"settings.json; {missing} is missing")


@pytest.mark.parametrize("name", ["Scores", "my-service", "x", "9lives"])
def test_a_folder_named_against_the_pattern_is_one_line(tmp_path: Path, name: str) -> None:
    folder = add(tmp_path, name)
    with pytest.raises(RegistryError) as caught:
        discover(tmp_path)
    assert str(caught.value) == (f"{folder}: invalid consumer name {name!r}: "
                                 f"use {registry.NAME_PATTERN.pattern}")


def test_a_21st_folder_is_refused(tmp_path: Path) -> None:
    for i in range(limits.MAX_STREAM_CONSUMERS):
        add(tmp_path, f"svc{i:02d}")
    assert len(load_all(tmp_path)) == limits.MAX_STREAM_CONSUMERS
    add(tmp_path, "one_more")
    with pytest.raises(RegistryError, match=f"21 consumers in {tmp_path}; a Kinesis stream "
                                            "allows 20"):
        load_all(tmp_path)


def test_two_folders_claiming_one_route_are_refused(tmp_path: Path) -> None:
    add(tmp_path, "first", {"routes": ["score", "$disconnect"]})
    add(tmp_path, "second", {"routes": ["$disconnect"], "serverRouteKeys": ["score"]})
    with pytest.raises(RegistryError, match="route 'score' is claimed by both 'first' and "
                                            "'second'"):
        load_all(tmp_path)


def test_every_key_is_one_field_with_its_default(tmp_path: Path) -> None:
    """Omitted keys take the model's defaults; every key listed by ``SETTINGS`` round-trips."""
    add(tmp_path, "bare", {"routes": ["a"]})
    bare = load_spec("bare", tmp_path)
    assert (bare.batch_size, bare.starting_position, bare.roster, bare.ack_routes) == (
        100, "LATEST", "none", ())
    full = {"routes": ["a", "$disconnect"], "serverRouteKeys": ["b"], "batchSize": 7,
            "maxBatchingWindowSeconds": 2, "startingPosition": "TRIM_HORIZON",
            "parallelizationFactor": 3, "retryAttempts": 0, "maxRecordAgeSeconds": 60,
            "timeoutSeconds": 900, "memoryMb": 10240, "roster": "read", "description": "d",
            "ackRoutes": ["a"], "connectionsRpsWeight": 2, "fanoutPageSize": 10,
            "presenceWindowMs": 2500, "presenceMaxMembers": 50}
    assert list(full) == list(registry.SETTINGS)
    add(tmp_path, "full", full)
    spec = load_spec("full", tmp_path)
    for key, spec_field in registry.SETTINGS.items():
        value = getattr(spec, spec_field.name)
        assert (list(value) if isinstance(value, tuple) else value) == full[key]


@pytest.mark.parametrize(("settings", "expected"), [
    ({"routes": ["a"], "batchSize": True}, "batchSize must be an integer 1..10000, not True"),
    ({"routes": ["a"], "description": 5}, "description must be a string, not 5"),
    ({"routes": ["bad route"]}, "routes entry 'bad route' is invalid: use $default, "
                                "$disconnect or a name matching"),
    ({"routes": [], "serverRouteKeys": ["$default"]},
     "serverRouteKeys entry '$default' is invalid: use a name matching"),
    ({"routes": ["a", "$default"], "ackRoutes": ["$default"]},
     "ackRoutes entry '$default' is not one of this consumer's non-$ routes (a)"),
    ({"routes": []}, "a consumer needs routes or serverRouteKeys"),
])
def test_each_rule_names_the_file_and_the_key(
    tmp_path: Path, settings: dict[str, object], expected: str
) -> None:
    folder = add(tmp_path, "svc", settings)
    with pytest.raises(RegistryError) as caught:
        load_spec("svc", tmp_path)
    assert str(caught.value).startswith(f"{folder / 'settings.json'}: {expected}")


def test_the_presence_window_sets_the_mapping_batching_window(tmp_path: Path) -> None:
    add(tmp_path, "pp", {"serverRouteKeys": ["presence"], "presenceWindowMs": 1500})
    assert load_spec("pp", tmp_path).batching_window_seconds == 2  # whole seconds, rounded up
    add(tmp_path, "qq", {"routes": ["a"], "maxBatchingWindowSeconds": 3})
    assert load_spec("qq", tmp_path).batching_window_seconds == 3


@pytest.mark.parametrize("route", ["ping", "whoami", "$connect"])
def test_a_hand_written_settings_file_may_not_route_a_reserved_key(
    tmp_path: Path, route: str
) -> None:
    folder = add(tmp_path, "scores", {"routes": ["score", route]})
    with pytest.raises(RegistryError) as caught:
        load_spec("scores", tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{folder / 'settings.json'}: ")
    assert f"routes entry {route!r} is reserved: the stack routes it itself" in message
