"""The one place consumers are declared.

Adding a microservice is one entry in ``CONSUMERS`` plus its folder ``consumers/<name>/``
(``handler.py`` and ``settings.json``). The CDK stack, the local twin (through the synthesized
template) and ``python -m pipeline new-consumer`` all read this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONSUMERS_DIR = PROJECT_ROOT / "consumers"

# A Kinesis stream allows at most 20 registered (enhanced fan-out) consumers.
# https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
MAX_STREAM_CONSUMERS = 20

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
ROUTE_PATTERN = re.compile(r"^(\$disconnect|\$default|[A-Za-z][A-Za-z0-9_.-]{0,63})$")

# --- registry: one entry per consumer, in deployment order -----------------------------------
CONSUMERS: tuple[str, ...] = (
    "echo",
    "chat",
    "fallback",
    "broadcast",
    "fanout",
)
# --- end of registry ---------------------------------------------------------------------------

RosterAccess = Literal["none", "read", "readwrite"]
StartingPosition = Literal["LATEST", "TRIM_HORIZON"]


class RegistryError(ValueError):
    """A consumer's declaration is invalid."""


@dataclass(frozen=True)
class ConsumerSpec:
    """One microservice: what it is subscribed to and how its event source mapping behaves."""

    name: str
    routes: tuple[str, ...]
    server_route_keys: tuple[str, ...] = ()
    batch_size: int = 100
    max_batching_window_seconds: int = 0
    starting_position: StartingPosition = "LATEST"
    parallelization_factor: int = 1
    retry_attempts: int = 3
    max_record_age_seconds: int = 3600
    timeout_seconds: int = 30
    memory_mb: int = 256
    roster: RosterAccess = "none"
    description: str = ""
    # Two-way routes: the gateway answers each frame with an ack/nack (README "Acknowledgements").
    ack_routes: tuple[str, ...] = ()
    # Its weight in the split of ``-c connectionsRps`` between the functions that post
    # (README "Broadcast at scale"); 0: it never posts, no share.
    connections_rps_weight: int = 1
    # > 0: it writes fan-out pages of at most this many recipients back to the stream (and is
    # granted PutRecords on it); the consumer of the ``fanout`` server route key posts them.
    fanout_page_size: int = 0

    @property
    def directory(self) -> Path:
        return CONSUMERS_DIR / self.name

    @property
    def api_routes(self) -> tuple[str, ...]:
        """Custom route keys this consumer adds to the API ($default/$disconnect always exist)."""
        return tuple(r for r in self.routes if not r.startswith("$"))

    @property
    def filter_route_keys(self) -> tuple[str, ...]:
        """Envelope ``routeKey`` values the event source mapping lets through: the client routes
        plus the route keys server-side producers write (never exposed as API routes)."""
        return self.routes + self.server_route_keys


_SETTING_KEYS = {
    "routes": "routes",
    "serverRouteKeys": "server_route_keys",
    "batchSize": "batch_size",
    "maxBatchingWindowSeconds": "max_batching_window_seconds",
    "startingPosition": "starting_position",
    "parallelizationFactor": "parallelization_factor",
    "retryAttempts": "retry_attempts",
    "maxRecordAgeSeconds": "max_record_age_seconds",
    "timeoutSeconds": "timeout_seconds",
    "memoryMb": "memory_mb",
    "roster": "roster",
    "description": "description",
    "ackRoutes": "ack_routes",
    "connectionsRpsWeight": "connections_rps_weight",
    "fanoutPageSize": "fanout_page_size",
}


def load_spec(name: str, consumers_dir: Path = CONSUMERS_DIR) -> ConsumerSpec:
    """Read ``consumers/<name>/settings.json`` into a validated spec."""
    if not NAME_PATTERN.match(name):
        raise RegistryError(f"invalid consumer name {name!r}: use {NAME_PATTERN.pattern}")
    path = consumers_dir / name / "settings.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RegistryError(f"consumer {name!r} has no {path}") from exc
    except ValueError as exc:  # not JSON, or not UTF-8
        raise RegistryError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: must be a JSON object")
    unknown = set(raw) - set(_SETTING_KEYS)
    if unknown:
        raise RegistryError(f"{path}: unknown settings {sorted(unknown)}")
    kwargs: dict[str, object] = {_SETTING_KEYS[k]: v for k, v in raw.items()}
    kwargs["routes"] = tuple(kwargs.get("routes", ()))  # type: ignore[arg-type]
    kwargs["server_route_keys"] = tuple(kwargs.get("server_route_keys", ()))  # type: ignore[arg-type]
    kwargs["ack_routes"] = tuple(kwargs.get("ack_routes", ()))  # type: ignore[arg-type]
    spec = ConsumerSpec(name=name, **kwargs)  # type: ignore[arg-type]
    _validate(spec, path)
    return spec


_INT_SETTINGS = ("batch_size", "max_batching_window_seconds", "parallelization_factor",
                 "retry_attempts", "max_record_age_seconds", "timeout_seconds", "memory_mb",
                 "connections_rps_weight", "fanout_page_size")
_TEXT_SETTINGS = ("routes", "server_route_keys", "ack_routes", "starting_position", "roster",
                  "description")


def _validate(spec: ConsumerSpec, path: Path) -> None:
    for attr in _INT_SETTINGS:
        value = getattr(spec, attr)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RegistryError(f"{path}: {attr} must be an integer, not {value!r}")
    for attr in _TEXT_SETTINGS:
        value = getattr(spec, attr)
        items = value if isinstance(value, tuple) else (value,)
        if not all(isinstance(item, str) for item in items):
            raise RegistryError(f"{path}: {attr} must be text, not {value!r}")
    for route in spec.routes:
        if not ROUTE_PATTERN.match(route):
            raise RegistryError(f"{path}: invalid route {route!r}")
    for key in spec.server_route_keys:
        if key.startswith("$") or not ROUTE_PATTERN.match(key):
            raise RegistryError(f"{path}: invalid server route key {key!r}")
    for key in spec.ack_routes:
        if key not in spec.api_routes:
            raise RegistryError(f"{path}: ackRoutes entry {key!r} is not one of this consumer's "
                                "non-$ routes")
    if not spec.routes and not spec.server_route_keys:
        raise RegistryError(f"{path}: a consumer needs routes or serverRouteKeys")
    if not 1 <= spec.batch_size <= 10_000:
        raise RegistryError(f"{path}: batchSize must be 1..10000")
    if not 0 <= spec.max_batching_window_seconds <= 300:
        raise RegistryError(f"{path}: maxBatchingWindowSeconds must be 0..300")
    if not 1 <= spec.parallelization_factor <= 10:
        raise RegistryError(f"{path}: parallelizationFactor must be 1..10")
    if not 0 <= spec.retry_attempts <= 10_000:
        raise RegistryError(f"{path}: retryAttempts must be 0..10000 (finite)")
    if not 60 <= spec.max_record_age_seconds <= 604_800:
        raise RegistryError(f"{path}: maxRecordAgeSeconds must be 60..604800 (finite)")
    if spec.starting_position not in ("LATEST", "TRIM_HORIZON"):
        raise RegistryError(f"{path}: startingPosition must be LATEST or TRIM_HORIZON")
    # Lambda's own ranges: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
    if not 1 <= spec.timeout_seconds <= 900:
        raise RegistryError(f"{path}: timeoutSeconds must be 1..900")
    if not 128 <= spec.memory_mb <= 10_240:
        raise RegistryError(f"{path}: memoryMb must be 128..10240")
    if not 0 <= spec.connections_rps_weight <= 1000:
        raise RegistryError(f"{path}: connectionsRpsWeight must be 0..1000")
    if not 0 <= spec.fanout_page_size <= 2000:  # a page's ids must fit a 1 MiB record easily
        raise RegistryError(f"{path}: fanoutPageSize must be 0..2000")
    if spec.roster not in ("none", "read", "readwrite"):
        raise RegistryError(f"{path}: roster must be none, read or readwrite")


def load_all(
    names: tuple[str, ...] = CONSUMERS, consumers_dir: Path = CONSUMERS_DIR
) -> list[ConsumerSpec]:
    """Every registered consumer, validated together (unique names and routes, <= 20)."""
    if len(names) > MAX_STREAM_CONSUMERS:
        raise RegistryError(
            f"{len(names)} consumers declared; a Kinesis stream allows {MAX_STREAM_CONSUMERS}"
        )
    if len(set(names)) != len(names):
        raise RegistryError("a consumer is registered twice")
    specs = [load_spec(n, consumers_dir) for n in names]
    owner: dict[str, str] = {}
    for spec in specs:
        for route in spec.filter_route_keys:
            if route == "$disconnect":
                continue  # several consumers may react to disconnects
            if route in owner:
                raise RegistryError(
                    f"route {route!r} is claimed by both {owner[route]!r} and {spec.name!r}"
                )
            owner[route] = spec.name
    return specs
