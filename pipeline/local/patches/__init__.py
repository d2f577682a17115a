"""Every patch of a third-party library's internals, and the versions each was written for.

The twin reaches into two libraries where they offer no hook:

- ``aiohttp`` (:mod:`.aiohttp_frames`): a guard in front of the WebSocket reader that enforces
  API Gateway's 32 KB frame quota;
- ``airspeed-ext`` (:mod:`.airspeed_methods`): the Java methods API Gateway's VTL offers, in
  airspeed's method table.

:func:`check_versions` (run by the twin at start-up, before anything listens) and each adapter's
own install refuse any version but the one pyproject.toml pins exactly (``==``, read from this
project's installed metadata, so the pin is written once) with an
:class:`~pipeline.local.errors.UnsupportedVersionError` naming the package, the installed and the
expected version. A range is not a tested environment: moto 5.2.6, a patch release, changed the
private Kinesis model an earlier patch relied on (the twin now owns its Kinesis,
:mod:`pipeline.local.kinesis`, and patches nothing of moto's: moto is pinned for the backends it
serves). Each patch's behaviour is also tested (``tests/local/test_patches.py``), so an upgrade
in ``make lock`` that breaks it fails a test.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, requires, version

from pipeline.local.errors import UnsupportedVersionError

DISTRIBUTION = "websocket-pipeline"
# The libraries whose internals the twin (or the runtime it runs) touches: each is pinned with
# ``==`` in pyproject.toml. moto (unpatched): its request dispatcher and backends serve DynamoDB,
# SQS and Secrets Manager in process; aiohttp: its WebSocket reader; airspeed-ext: its method
# table. (Powertools is used through its public API only: a range.)
PINNED: tuple[str, ...] = ("moto", "aiohttp", "airspeed-ext")


def _name(requirement: str) -> str:
    end = min((i for i, c in enumerate(requirement) if c in "[=<>!~; "), default=len(requirement))
    return requirement[:end].strip().lower().replace("_", "-")


@cache
def expected(package: str) -> str:
    """The exact version pyproject.toml pins for *package* (from the installed metadata)."""
    try:
        lines = requires(DISTRIBUTION) or []
    except PackageNotFoundError as exc:
        raise UnsupportedVersionError(package, _installed(package), "(unknown: run make install)"
                                      ) from exc
    for line in lines:
        if _name(line) == package and "==" in line:
            return line.split("==", 1)[1].split(";", 1)[0].split(",", 1)[0].strip()
    raise UnsupportedVersionError(package, _installed(package), "(not pinned in pyproject.toml)")


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def require(package: str) -> None:
    """Raise :class:`UnsupportedVersionError` unless *package* is exactly the pinned version."""
    want, have = expected(package), _installed(package)
    if have != want:
        raise UnsupportedVersionError(package, have, want)


def check_versions() -> None:
    """Check every pinned library (the twin's start-up calls this first)."""
    for package in PINNED:
        require(package)
