"""Lambda packaging without Docker: the shared layer and the consumers' code assets.

The layer is ``python/pipeline/__init__.py`` + ``python/pipeline/runtime/**`` + the
``[tool.pipeline].layer-requirements`` distributions, installed by pip as manylinux2014 aarch64
wheels for CPython 3.12 (the functions run on arm64). The distributions are installed once per
requirements set under ``.build/layer-deps/<hash>`` (``make install`` builds them, so a synth
needs no network afterwards, even after the runtime's sources change); each layer is cached under
``.build/layer/<hash>`` (requirements + sources). Both are built atomically (temporary directory +
rename), so repeated and concurrent synths reuse one build. ``python -m
pipeline.infrastructure.packaging`` builds the current layer and prints its directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pipeline import PROJECT_ROOT
from pipeline.infrastructure import PackagingError

LAYER_PLATFORM = ("manylinux2014_aarch64", "cp", "3.12")
ASSET_EXCLUDES = ["__pycache__", "*.pyc", "tests", "test_*.py", ".pytest_cache"]
_PIP_TIMEOUT_S = 600
KEEP_LAYERS = 8
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def layer_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml",
                       key: str = "layer-requirements") -> list[str]:
    """A layer's requirement specifiers (``[tool.pipeline].<key>``), with the ranges from
    ``[project].dependencies``."""
    data = tomllib.loads(pyproject.read_text())
    wanted = data.get("tool", {}).get("pipeline", {}).get(key, [])
    ranges: dict[str, str] = {}
    for dep in data.get("project", {}).get("dependencies", []):
        match = _NAME.match(dep)
        if match:
            ranges[normalize(match.group(1))] = dep.strip()
    missing = [w for w in wanted if normalize(w) not in ranges]
    if missing:
        raise PackagingError(f"{key} {missing} are not in [project].dependencies")
    return [ranges[normalize(w)] for w in wanted]


def runtime_sources(root: Path = PROJECT_ROOT) -> list[Path]:
    """``pipeline/__init__.py`` and every file of ``pipeline/runtime/`` (may not exist yet)."""
    files = [root / "pipeline" / "__init__.py"]
    runtime = root / "pipeline" / "runtime"
    if runtime.is_dir():
        files.extend(sorted(p for p in runtime.rglob("*") if p.is_file() and _shipped(p)))
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
    platform, implementation, version = LAYER_PLATFORM
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--platform", platform, "--implementation", implementation,
        "--python-version", version, "--only-binary=:all:", "--target", str(target),
        *requirements,
    ]
    if not requirements:
        target.mkdir(parents=True, exist_ok=True)
        return
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise PackagingError(f"pip timed out after {_PIP_TIMEOUT_S}s building the layer") from exc
    if done.returncode != 0:
        raise PackagingError(f"pip failed building the layer:\n{done.stderr.strip()}")


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
