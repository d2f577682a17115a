"""Lambda packaging without Docker: the shared layer and the consumers' code assets.

The layer is ``python/pipeline/{__init__,names}.py`` + ``python/pipeline/{aws,runtime}/**`` + the
``[tool.pipeline].layer-requirements`` distributions, installed by uv as manylinux2014 aarch64
wheels for CPython 3.12 (the functions run on arm64), at the versions and hashes of ``uv.lock``
(the ones the tests ran with). The distributions are installed once per
requirements set under ``.build/layer-deps/<hash>`` (``make install`` builds them, so a synth
needs no network afterwards, even after the runtime's sources change); each layer is cached under
``.build/layer/<hash>`` (requirements + sources). Both are built atomically (temporary directory +
rename), so repeated and concurrent synths reuse one build. ``python -m
pipeline.infrastructure.packaging`` builds the current layer and prints its directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from uv import find_uv_bin

from pipeline import PROJECT_ROOT, lockfile
from pipeline.infrastructure import PackagingError

LAYER_PLATFORM = ("aarch64-manylinux2014", "3.12")  # uv's --python-platform, --python-version
ASSET_EXCLUDES = ["__pycache__", "*.pyc", "tests", "test_*.py", ".pytest_cache"]
_PIP_TIMEOUT_S = 600
KEEP_LAYERS = 8
def layer_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml",
                       key: str = "layer-requirements") -> list[str]:
    """A layer's distributions and their dependencies, as hash-pinned lines at the versions the
    project's ``uv.lock`` records (beside *pyproject*), for Lambda's arm64 CPython 3.12."""
    data = tomllib.loads(pyproject.read_text())
    wanted = data.get("tool", {}).get("pipeline", {}).get(key, [])
    try:
        return lockfile.requirements(wanted, lockfile.LAMBDA_ENVIRONMENT,
                                     lockfile.LockFile(pyproject.parent / "uv.lock"))
    except lockfile.LockError as exc:
        raise PackagingError(f"{key}: {exc}") from exc


# What the runtime imports of ``pipeline`` (import-linter's contract keeps it to these).
LAYER_MODULES = ("__init__.py", "names.py")
LAYER_PACKAGES = ("aws", "runtime")


def runtime_sources(root: Path = PROJECT_ROOT) -> list[Path]:
    """``pipeline/{__init__,names}.py`` (those that exist) and every file of
    ``pipeline/{aws,runtime}/`` (may not exist yet)."""
    files = [root / "pipeline" / "__init__.py"]
    files.extend(path for name in LAYER_MODULES[1:] if (path := root / "pipeline" / name).is_file())
    for package in LAYER_PACKAGES:
        folder = root / "pipeline" / package
        if folder.is_dir():
            files.extend(sorted(p for p in folder.rglob("*") if p.is_file() and _shipped(p)))
    return files


def _shipped(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix != ".pyc"


def layer_hash(requirements: Iterable[str], sources: Iterable[Path], root: Path) -> str:
    """Content hash of what goes into the layer: platform, requirements and runtime sources."""
    digest = hashlib.sha256()
    digest.update(repr(LAYER_PLATFORM).encode())
    for req in requirements:
        digest.update(b"req\0" + req.encode() + b"\0")
    for src in sources:
        digest.update(b"src\0" + src.relative_to(root).as_posix().encode() + b"\0")
        digest.update(src.read_bytes())
    return digest.hexdigest()[:24]


def build_layer(root: Path = PROJECT_ROOT, cache: Path | None = None) -> Path:
    """Return a directory with ``python/`` ready to be a layer asset, building it if needed."""
    cache = cache or root / ".build" / "layer"
    requirements = layer_requirements(root / "pyproject.toml")
    sources = runtime_sources(root)
    final = cache / layer_hash(requirements, sources, root)
    if (final / "python").is_dir():
        return final
    deps = _dependencies(requirements, root, cache.parent / "layer-deps")

    def fill(tmp: Path) -> None:
        shutil.copytree(deps / "python", tmp / "python")
        for src in sources:
            dest = tmp / "python" / src.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)

    built = _build_once(final, fill)
    _prune(cache, keep=KEEP_LAYERS)
    return built


def build_dependency_layer(key: str, root: Path = PROJECT_ROOT) -> Path:
    """A directory with ``python/`` holding only the ``[tool.pipeline].<key>`` distributions
    (arm64 wheels, installed once per requirements set, like the shared layer's)."""
    requirements = layer_requirements(root / "pyproject.toml", key)
    return _dependencies(requirements, root, root / ".build" / "layer-deps")


def _prune(cache: Path, keep: int) -> None:
    """Drop all but the ``keep`` newest layers (each runtime edit makes one, ~7 MB)."""
    layers = sorted((d for d in cache.iterdir() if d.is_dir() and not d.name.startswith(".")),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in layers[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _dependencies(requirements: list[str], root: Path, cache: Path) -> Path:
    """The layer's third-party distributions, pip-installed once per requirements set."""
    final = cache / layer_hash(requirements, (), root)
    if (final / "python").is_dir():
        return final
    return _build_once(final, lambda tmp: _pip_install(requirements, tmp / "python"))


def _build_once(final: Path, fill: Callable[[Path], None]) -> Path:
    """Build ``final`` through a temporary sibling and an atomic rename (concurrency-safe)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        fill(tmp)
        try:
            os.rename(tmp, final)  # atomic; fails if a concurrent build got there first
        except OSError:
            if not (final / "python").is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _pip_install(requirements: list[str], target: Path) -> None:
    """Install the hash-pinned *requirements* (and nothing else) as Lambda's wheels."""
    if not requirements:
        target.mkdir(parents=True, exist_ok=True)
        return
    platform, version = LAYER_PLATFORM
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(requirements) + "\n")
    cmd = [
        find_uv_bin(), "pip", "install", "--quiet", "--no-deps", "--require-hashes",
        "--only-binary", ":all:", "--python-platform", platform, "--python-version", version,
        "--python", sys.executable, "--target", str(target), "-r", listing.name,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise PackagingError(f"uv timed out after {_PIP_TIMEOUT_S}s building the layer") from exc
    finally:
        os.unlink(listing.name)
    if done.returncode != 0:
        raise PackagingError(f"uv failed building the layer:\n{done.stderr.strip()}")


def asset_files(directory: Path) -> Iterator[Path]:
    """Files a code asset of ``directory`` ships (for tests and tooling; CDK applies the excludes)."""
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_file() and not _excluded(rel):
            yield rel


def _excluded(rel: Path) -> bool:
    return any(part in ("__pycache__", "tests", ".pytest_cache") for part in rel.parts) or (
        rel.suffix == ".pyc" or (rel.name.startswith("test_") and rel.suffix == ".py")
    )


AUTHORIZER_REQUIREMENTS = "authorizer-requirements"

if __name__ == "__main__":  # ``make install``: build the layers now, so synths work offline
    print(build_layer())
    print(build_dependency_layer(AUTHORIZER_REQUIREMENTS))
