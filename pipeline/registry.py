"""Consumers are folders: ``consumers/<name>/handler.py`` + ``consumers/<name>/settings.json``.

:func:`discover` lists them (sorted by name: the deployment order) and :func:`load_all` reads
every ``settings.json`` into a :class:`ConsumerSpec`, validated together. The CDK stack, the
local twin (through the synthesized template), ``pipeline plan`` and ``new-consumer`` all call
these; nothing else lists consumers.

A settings key is one :class:`ConsumerSpec` field declared with :func:`setting` (the key as the
file spells it, its default and its :class:`Rule`); :func:`load_spec` checks each once.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pipeline import PROJECT_ROOT as PROJECT_ROOT  # re-exported: scaffold.py reads it here
from pipeline.aws.limits import (
    ESM_BATCH_SIZE,
    ESM_BATCHING_WINDOW_S,
    ESM_PARALLELIZATION_FACTOR,
    ESM_RECORD_AGE_MIN_S,
    ESM_RECORD_AGE_S,
    ESM_RETRY_ATTEMPTS,
    MAX_STREAM_CONSUMERS,
)
from pipeline.names import RESERVED_ROUTES

CONSUMERS_DIR = PROJECT_ROOT / "consumers"
CONSUMER_FILES = ("handler.py", "settings.json")  # what makes a folder a consumer


NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
ROUTE_PATTERN = re.compile(r"^(\$disconnect|\$default|[A-Za-z][A-Za-z0-9_.-]{0,63})$")
_ROUTE_NAME = "[A-Za-z][A-Za-z0-9_.-]{0,63}"

RosterAccess = Literal["none", "read", "readwrite"]
StartingPosition = Literal["LATEST", "TRIM_HORIZON"]


class RegistryError(ValueError):
    """A consumer's folder or settings are invalid; ``str(exc)`` is one line naming the file."""


class Invalid(ValueError):
    """A rule's verdict on one value: the words after the key (``must be ..., not '9'``)."""


class Rule(Protocol):
    """How one settings key is checked: the JSON value in, the field's value out."""

    def __call__(self, value: object) -> Any: ...


@dataclass(frozen=True)
class IntRange:
    """An integer (not a bool) in ``low..high`` inclusive; ``why`` is appended to the range."""

    low: int
    high: int
    why: str = ""

    def __call__(self, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high:
            return value
        raise Invalid(f"must be an integer {self.low}..{self.high}{self.why}, not {value!r}")


@dataclass(frozen=True)
class OneOf:
    """One of a few strings."""

    choices: tuple[str, ...]

    def __call__(self, value: object) -> str:
        if isinstance(value, str) and value in self.choices:
            return value
        raise Invalid(f"must be one of {', '.join(self.choices)}, not {value!r}")


@dataclass(frozen=True)
class Text:
    """Any string."""

    def __call__(self, value: object) -> str:
        if isinstance(value, str):
            return value
        raise Invalid(f"must be a string, not {value!r}")


@dataclass(frozen=True)
class Names:
    """A list of strings, each matching ``pattern`` (``use`` says what it accepts) and none of
    ``reserved`` -> a tuple."""

    pattern: re.Pattern[str] | None = None
    use: str = ""
    reserved: frozenset[str] = frozenset()

    def __call__(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Invalid(f"must be a list of strings, not {value!r}")
        for item in value:
            if item in self.reserved:
                raise Invalid(f"entry {item!r} is reserved: the stack routes it itself "
                              f"({', '.join(sorted(self.reserved))} are never a consumer's)")
            if self.pattern is not None and not self.pattern.match(item):
                raise Invalid(f"entry {item!r} is invalid: use {self.use}")
        return tuple(value)


def setting(key: str, rule: Rule, default: object) -> Any:
    """A :class:`ConsumerSpec` field read from ``settings.json`` key ``key``, checked by ``rule``."""
    return field(default=default, metadata={"key": key, "rule": rule})


_SERVER_KEY = re.compile(f"^{_ROUTE_NAME}$")


@dataclass(frozen=True)
class ConsumerSpec:
    """One microservice: its folder, what it is subscribed to and how its mapping behaves.

    Every field after ``directory`` is a ``settings.json`` key, in the order the file lists them;
    Lambda's own ranges: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
    """

    name: str
    directory: Path
    routes: tuple[str, ...] = setting("routes", Names(
        ROUTE_PATTERN, f"$default, $disconnect or a name matching {_ROUTE_NAME}",
        RESERVED_ROUTES), ())
    # Route keys server-side producers write (never exposed as API routes).
    server_route_keys: tuple[str, ...] = setting(
        "serverRouteKeys", Names(_SERVER_KEY, f"a name matching {_ROUTE_NAME}"), ())
    batch_size: int = setting(
        "batchSize", IntRange(ESM_BATCH_SIZE.low, ESM_BATCH_SIZE.high), 100)
    max_batching_window_seconds: int = setting(
        "maxBatchingWindowSeconds",
        IntRange(ESM_BATCHING_WINDOW_S.low, ESM_BATCHING_WINDOW_S.high), 0)
    starting_position: StartingPosition = setting(
        "startingPosition", OneOf(("LATEST", "TRIM_HORIZON")), "LATEST")
    parallelization_factor: int = setting(
        "parallelizationFactor",
        IntRange(ESM_PARALLELIZATION_FACTOR.low, ESM_PARALLELIZATION_FACTOR.high), 1)
    retry_attempts: int = setting(
        "retryAttempts", IntRange(0, ESM_RETRY_ATTEMPTS.high, " (finite)"), 3)
    max_record_age_seconds: int = setting(
        "maxRecordAgeSeconds",
        IntRange(ESM_RECORD_AGE_MIN_S, ESM_RECORD_AGE_S.high, " (finite)"), 3600)
    timeout_seconds: int = setting("timeoutSeconds", IntRange(1, 900), 30)
    memory_mb: int = setting("memoryMb", IntRange(128, 10_240), 256)
    roster: RosterAccess = setting("roster", OneOf(("none", "read", "readwrite")), "none")
    description: str = setting("description", Text(), "")
    # Two-way routes: the gateway answers each frame with an ack/nack (docs/acks.md).
    ack_routes: tuple[str, ...] = setting("ackRoutes", Names(), ())
    # Its weight in the split of ``-c connectionsRps`` between the functions that post
    # (docs/protocol.md "Broadcast at scale"); 0: it never posts, no share.
    connections_rps_weight: int = setting("connectionsRpsWeight", IntRange(0, 1000), 1)
    # > 0: it writes fan-out pages of at most this many recipients back to the stream (and is
    # granted PutRecords on it); the consumer of the ``fanout`` server route key posts them.
    # At most 2,000: a page's ids must fit a 1 MiB record easily.
    fanout_page_size: int = setting("fanoutPageSize", IntRange(0, 2000), 0)
    # > 0: it coalesces presence deltas: its mapping batches for at least this long (rounded up
    # to whole seconds, the mapping's unit), and each batch is one frame per member per room.
    presence_window_ms: int = setting("presenceWindowMs", IntRange(0, 300_000), 0)
    # Rooms above this many members get no presence frames (``who`` answers them); every
    # function is told it (``PRESENCE_MAX_MEMBERS``), the runtime's 410 prune announces by it.
    presence_max_members: int = setting("presenceMaxMembers", IntRange(0, 10_000), 100)

    @property
    def batching_window_seconds(self) -> int:
        """The mapping's MaximumBatchingWindowInSeconds: at least the presence window."""
        return max(self.max_batching_window_seconds, -(-self.presence_window_ms // 1000))

    @property
    def handler(self) -> Path:
        """The consumer's ``handler.py``."""
        return self.directory / "handler.py"

    @property
    def api_routes(self) -> tuple[str, ...]:
        """Custom route keys this consumer adds to the API ($default/$disconnect always exist)."""
        return tuple(r for r in self.routes if not r.startswith("$"))

    @property
    def filter_route_keys(self) -> tuple[str, ...]:
        """Envelope ``routeKey`` values the event source mapping lets through: the client routes
        plus the route keys server-side producers write."""
        return self.routes + self.server_route_keys


SETTINGS: dict[str, dataclasses.Field[Any]] = {
    f.metadata["key"]: f for f in dataclasses.fields(ConsumerSpec) if "key" in f.metadata
}  # the keys as settings.json spells them, in order


def _check_together(spec: ConsumerSpec) -> str | None:
    """Rules that involve more than one key."""
    for key in spec.ack_routes:
        if key not in spec.api_routes:
            return (f"ackRoutes entry {key!r} is not one of this consumer's "
                    f"non-$ routes ({', '.join(spec.api_routes) or 'none'})")
    if not spec.routes and not spec.server_route_keys:
        return "a consumer needs routes or serverRouteKeys"
    return None


def load_spec(name: str, consumers_dir: Path = CONSUMERS_DIR) -> ConsumerSpec:
    """Read ``<consumers_dir>/<name>/settings.json`` into a validated spec.

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
    unknown = sorted(set(raw) - set(SETTINGS))
    if unknown:
        raise RegistryError(f"{path}: unknown settings {unknown}; the keys are "
                            + ", ".join(SETTINGS))
    values: dict[str, Any] = {}
    for key, spec_field in SETTINGS.items():
        if key in raw:
            try:
                values[spec_field.name] = spec_field.metadata["rule"](raw[key])
            except Invalid as exc:
                raise RegistryError(f"{path}: {key} {exc}") from None
    spec = ConsumerSpec(name=name, directory=consumers_dir / name, **values)
    problem = _check_together(spec)
    if problem:
        raise RegistryError(f"{path}: {problem}")
    return spec


def consumer_handler(name: str, consumers_dir: Path = CONSUMERS_DIR) -> Path:
    """Where consumer ``name``'s ``handler.py`` is (whether or not it exists)."""
    return consumers_dir / name / "handler.py"


def discover(consumers_dir: Path = CONSUMERS_DIR) -> tuple[str, ...]:
    """The consumers' names: the folders of ``consumers_dir`` holding ``handler.py`` and
    ``settings.json``, sorted by name (the deployment order).

    A hidden folder, or one holding neither file (``__pycache__``, an emptied folder), is not a
    consumer and is skipped; one holding only one of them, or named against
    :data:`NAME_PATTERN`, is an error naming the folder.
    """
    if not consumers_dir.is_dir():
        raise RegistryError(f"no consumers folder {consumers_dir}")
    names = []
    for folder in sorted(p for p in consumers_dir.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue  # hidden: tools' folders, and new-consumer's staging folder
        present = [f for f in CONSUMER_FILES if (folder / f).is_file()]
        if not present:
            continue
        if len(present) < len(CONSUMER_FILES):
            missing = next(f for f in CONSUMER_FILES if f not in present)
            raise RegistryError(f"{folder}: a consumer folder needs {' and '.join(CONSUMER_FILES)}"
                                f"; {missing} is missing")
        if not NAME_PATTERN.match(folder.name):
            raise RegistryError(f"{folder}: invalid consumer name {folder.name!r}: "
                                f"use {NAME_PATTERN.pattern}")
        names.append(folder.name)
    return tuple(names)


def load_all(consumers_dir: Path = CONSUMERS_DIR) -> list[ConsumerSpec]:
    """Every consumer in ``consumers_dir``, in deployment order, validated together (unique
    routes, at most 20)."""
    names = discover(consumers_dir)
    if len(names) > MAX_STREAM_CONSUMERS:
        raise RegistryError(f"{len(names)} consumers in {consumers_dir}; a Kinesis stream "
                            f"allows {MAX_STREAM_CONSUMERS}")
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
