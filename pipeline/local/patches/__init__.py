"""Every patch of a third-party library's internals, and the versions each was written for.

The twin reaches into three libraries where they offer no hook:

- ``moto`` (:mod:`.moto_kinesis`): Kinesis shards with O(1) puts, indexed reads, inclusive hash
  key ranges, and a per-backend :class:`~pipeline.local.kinesis_store.KinesisStore` consulted on
  every put (write limits, put notifications);
- ``aiohttp`` (:mod:`.aiohttp_frames`): a guard in front of the WebSocket reader that enforces
  API Gateway's 32 KB frame quota;
- ``airspeed-ext`` (:mod:`.airspeed_methods`): the Java methods API Gateway's VTL offers, in
  airspeed's method table.

:func:`check_versions` (run by the twin at start-up) and each adapter's own install refuse a
version outside :data:`SUPPORTED` with an :class:`~pipeline.local.errors.UnsupportedVersionError`
naming the package, the installed and the supported versions; pyproject.toml pins the same ranges.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

from pipeline.local.errors import UnsupportedVersionError

# package -> (lowest supported, first unsupported): keep in step with pyproject.toml.
SUPPORTED: dict[str, tuple[str, str]] = {
    "moto": ("5.2.5", "5.3"),
    "aiohttp": ("3.14.5", "3.15"),
    "airspeed-ext": ("0.6.9", "0.7"),
}


def _parts(text: str) -> tuple[int, ...]:
    """``"3.14.5"`` -> ``(3, 14, 5)``; a pre-release tail ("0rc1") ends the number."""
    out: list[int] = []
    for piece in text.split("."):
        digits = re.match(r"\d*", piece)
        if digits is None or not digits.group():
            break
        out.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(out)


def supported_range(package: str) -> str:
    """The pip specifier of the versions the twin's patches of *package* were written for."""
    low, high = SUPPORTED[package]
    return f">={low},<{high}"


def is_supported(package: str, installed: str) -> bool:
    """Whether *installed* lies in :data:`SUPPORTED` for *package*."""
    low, high = SUPPORTED[package]
    return _parts(low) <= _parts(installed) < _parts(high)


def require(package: str) -> None:
    """Raise :class:`UnsupportedVersionError` unless the installed *package* is supported."""
    try:
        installed = version(package)
    except PackageNotFoundError:
        installed = "(not installed)"
    if installed == "(not installed)" or not is_supported(package, installed):
        raise UnsupportedVersionError(package, installed, supported_range(package))


def check_versions() -> None:
    """Check every patched library (the twin's start-up calls this first)."""
    for package in SUPPORTED:
        require(package)
