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

from pipeline import PROJECT_ROOT as PROJECT_ROOT  # re-exported: scaffold.py reads it here

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
}


_KEY_OF = {attr: key for key, attr in _SETTING_KEYS.items()}  # the key as the file spells it
_LIST_SETTINGS = ("routes", "server_route_keys", "ack_routes")


def load_spec(name: str, consumers_dir: Path = CONSUMERS_DIR) -> ConsumerSpec:
    """Read ``consumers/<name>/settings.json`` into a validated spec.

    Every error names the file, the key as the file spells it (``batchSize``) and what the key
    accepts, in one line.
    """
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
        raise RegistryError(f"{path}: must be a JSON object like {{\"routes\": [\"score\"]}}")
    unknown = set(raw) - set(_SETTING_KEYS)
    if unknown:
        raise RegistryError(f"{path}: unknown settings {sorted(unknown)}; the keys are "
                            + ", ".join(_SETTING_KEYS))
    kwargs: dict[str, object] = {_SETTING_KEYS[k]: v for k, v in raw.items()}
    for attr in _LIST_SETTINGS:
        value = kwargs.get(attr, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RegistryError(f"{path}: {_KEY_OF[attr]} must be a list of strings, "
                                f"not {value!r}")
        kwargs[attr] = tuple(value)
    spec = ConsumerSpec(name=name, **kwargs)  # type: ignore[arg-type]
    _validate(spec, path)
    return spec


_INT_SETTINGS = ("batch_size", "max_batching_window_seconds", "parallelization_factor",
                 "retry_attempts", "max_record_age_seconds", "timeout_seconds", "memory_mb")
# (low, high, why), inclusive; Lambda's own ranges:
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
_RANGES: dict[str, tuple[int, int, str]] = {
    "batch_size": (1, 10_000, ""),
    "max_batching_window_seconds": (0, 300, ""),
    "parallelization_factor": (1, 10, ""),
    "retry_attempts": (0, 10_000, " (finite)"),
    "max_record_age_seconds": (60, 604_800, " (finite)"),
    "timeout_seconds": (1, 900, ""),
    "memory_mb": (128, 10_240, ""),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "starting_position": ("LATEST", "TRIM_HORIZON"),
    "roster": ("none", "read", "readwrite"),
}


def _validate(spec: ConsumerSpec, path: Path) -> None:
    for attr in _INT_SETTINGS:
        value = getattr(spec, attr)
        low, high, why = _RANGES[attr]
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if not is_int or not low <= value <= high:
            raise RegistryError(f"{path}: {_KEY_OF[attr]} must be an integer {low}..{high}{why}, "
                                f"not {value!r}")
    for attr, choices in _CHOICES.items():
        value = getattr(spec, attr)
        if value not in choices:
            raise RegistryError(f"{path}: {_KEY_OF[attr]} must be one of "
                                f"{', '.join(choices)}, not {value!r}")
    if not isinstance(spec.description, str):
        raise RegistryError(f"{path}: description must be a string, not {spec.description!r}")
    for route in spec.routes:
        if not ROUTE_PATTERN.match(route):
            raise RegistryError(f"{path}: routes entry {route!r} is invalid: use $default, "
                                "$disconnect or a name matching [A-Za-z][A-Za-z0-9_.-]{0,63}")
    for key in spec.server_route_keys:
        if key.startswith("$") or not ROUTE_PATTERN.match(key):
            raise RegistryError(f"{path}: serverRouteKeys entry {key!r} is invalid: use a name "
                                "matching [A-Za-z][A-Za-z0-9_.-]{0,63}")
    for key in spec.ack_routes:
        if key not in spec.api_routes:
            raise RegistryError(f"{path}: ackRoutes entry {key!r} is not one of this consumer's "
                                f"non-$ routes ({', '.join(spec.api_routes) or 'none'})")
    if not spec.routes and not spec.server_route_keys:
        raise RegistryError(f"{path}: a consumer needs routes or serverRouteKeys")


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


def main() -> int:
    """``python -m pipeline.registry``: check every consumer's settings; one line on error."""
    import sys

    try:
        specs = load_all()
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(specs)} consumers: {', '.join(s.name for s in specs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
