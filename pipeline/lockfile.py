"""The lock file (``uv.lock``), read with the standard library: exact versions and their hashes.

``uv.lock`` is the one record of every Python distribution the project was tested with: the
development environment (``make install`` runs ``uv sync --frozen``), uv itself (``make install``
bootstraps it with pip from :func:`requirements`, hash-checked) and the Lambda layers' arm64
wheels (``pipeline.infrastructure.packaging``), so a layer ships the versions the tests ran with.

``python -m pipeline.lockfile requirements NAME...`` prints ``NAME==VERSION --hash=...`` lines
for pip's or uv's ``--require-hashes`` (the names and their locked dependencies, for Lambda's
platform unless ``--here``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import PROJECT_ROOT

LOCK = PROJECT_ROOT / "uv.lock"
PROJECT = "websocket-pipeline"

# The environment Lambda's functions run in (arm64, CPython 3.12): markers are evaluated for it.
LAMBDA_ENVIRONMENT: Mapping[str, str] = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
    "platform_release": "",
    "platform_version": "",
    "implementation_version": "3.12.0",
}


class LockError(Exception):
    """The lock file is missing, or does not hold what was asked of it."""


@dataclass(frozen=True)
class Locked:
    """One locked distribution: its exact version and the hashes of its files."""

    name: str
    version: str
    hashes: tuple[str, ...]

    def requirement(self) -> str:
        """A ``--require-hashes`` line: ``name==version --hash=sha256:...``."""
        return " ".join([f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)])


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


class LockFile:
    """The packages of one ``uv.lock``."""

    def __init__(self, path: Path = LOCK) -> None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise LockError(f"{path} is missing: run `make lock`") from exc
        self.path = path
        self._packages: dict[str, list[dict[str, Any]]] = {}
        for package in data.get("package", []):
            self._packages.setdefault(package["name"], []).append(package)

    def version(self, name: str) -> str:
        """The locked version of *name* (the only one, or LockError when it is forked)."""
        return str(self._package(normalize(name), None)["version"])

    def _package(self, name: str, version: str | None) -> dict[str, Any]:
        candidates = self._packages.get(name, [])
        if version is not None:
            candidates = [p for p in candidates if p["version"] == version]
        if len(candidates) != 1:
            found = [p["version"] for p in self._packages.get(name, [])]
            raise LockError(f"{self.path.name}: {name} {version or ''} is locked as {found}")
        return candidates[0]

    def closure(self, names: Iterable[str],
                environment: Mapping[str, str] = LAMBDA_ENVIRONMENT) -> list[Locked]:
        """*names* (dependencies of the project) and everything they need in *environment*,
        at their locked versions, sorted by name."""
        project = self._package(PROJECT, None)
        wanted = {normalize(n) for n in names}
        roots = [d for d in project.get("dependencies", []) if d["name"] in wanted]
        missing = wanted - {d["name"] for d in roots}
        if missing:
            raise LockError(f"{sorted(missing)} are not dependencies of {PROJECT} in the lock")
        out: dict[str, Locked] = {}
        todo = list(roots)
        while todo:
            ref = todo.pop()
            if not _applies(ref.get("marker"), environment):
                continue
            package = self._package(ref["name"], ref.get("version"))
            extras = tuple(ref.get("extra", ()))
            key = ref["name"]
            if key in out and not extras:
                continue
            out[key] = _locked(package)
            todo.extend(package.get("dependencies", []))
            for extra in extras:
                todo.extend(package.get("optional-dependencies", {}).get(extra, []))
        return [out[k] for k in sorted(out)]


def _locked(package: dict[str, Any]) -> Locked:
    files = [*package.get("wheels", []), package.get("sdist") or {}]
    hashes = tuple(f["hash"] for f in files if f.get("hash"))
    return Locked(package["name"], str(package["version"]), hashes)


def _applies(marker: str | None, environment: Mapping[str, str]) -> bool:
    if not marker:
        return True
    from packaging.markers import Marker  # only markers need it (not there when bootstrapping)

    return Marker(marker).evaluate(dict(environment))


def here() -> dict[str, str]:
    """This interpreter's marker environment."""
    from packaging.markers import default_environment

    return {key: str(value) for key, value in default_environment().items()}


def requirements(names: Iterable[str], environment: Mapping[str, str] = LAMBDA_ENVIRONMENT,
                 lock: LockFile | None = None) -> list[str]:
    """``--require-hashes`` lines for *names* and their locked dependencies."""
    return [p.requirement() for p in (lock or LockFile()).closure(names, environment)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.lockfile", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("requirements", help="hash-pinned lines for NAMEs and their dependencies")
    req.add_argument("names", nargs="+")
    req.add_argument("--here", action="store_true",
                     help=f"evaluate markers for this interpreter ({platform.machine()}), "
                          "not Lambda's arm64 CPython 3.12")
    args = parser.parse_args(argv)
    try:
        lines = requirements(args.names, here() if args.here else LAMBDA_ENVIRONMENT)
    except LockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
