"""The Docker-free layer build: requirements, cache key, atomic cached build, assembly content."""

from __future__ import annotations

import json
import threading
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from pipeline import PROJECT_ROOT, lockfile
from pipeline.infrastructure import PackagingError, packaging

PYPROJECT = """
[tool.pipeline]
layer-requirements = ["a"]
"""

# A lock with a marker for another platform and a forked package (two versions by Python).
LOCK = """
version = 1
[[package]]
name = "websocket-pipeline"
version = "0.1.0"
source = { editable = "." }
dependencies = [{ name = "a" }, { name = "x86-only", marker = "platform_machine == 'x86_64'" }]
[[package]]
name = "a"
version = "1.0"
dependencies = [
  { name = "arm-only", marker = "platform_machine == 'aarch64'" },
  { name = "b", version = "3.0", marker = "python_full_version < '3.12'" },
  { name = "b", version = "3.1", marker = "python_full_version >= '3.12'" },
  { name = "win", marker = "sys_platform == 'win32'" },
]
sdist = { url = "https://x/a-1.0.tar.gz", hash = "sha256:a0" }
wheels = [{ url = "https://x/a-1.0-py3-none-any.whl", hash = "sha256:aaa" }]
[[package]]
name = "arm-only"
version = "2.0"
[[package]]
name = "x86-only"
version = "2.0"
[[package]]
name = "b"
version = "3.0"
[[package]]
name = "b"
version = "3.1"
[[package]]
name = "win"
version = "1"
"""


def make_project(root: Path, pyproject: str = PYPROJECT) -> Path:
    (root / "pipeline" / "runtime" / "__pycache__").mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
    (root / "uv.lock").write_text(LOCK)
    (root / "pipeline" / "__init__.py").write_text('"""pkg"""\n')
    (root / "pipeline" / "runtime" / "__init__.py").write_text("")
    (root / "pipeline" / "runtime" / "envelope.py").write_text("X = 1\n")
    (root / "pipeline" / "runtime" / "__pycache__" / "envelope.cpython-311.pyc").write_bytes(b"x")
    (root / "pipeline" / "local.py").write_text("not shipped\n")
    return root


class FakePip:
    """Stands in for pip (the subject is caching and atomicity); counts calls."""

    def __init__(self, gate: threading.Barrier | None = None, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.gate = gate
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, requirements: list[str], target: Path) -> None:
        with self.lock:
            self.calls.append(requirements)
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.fail:
            raise PackagingError("pip failed building the layer:\nno matching distribution")
        (target / "orjson").mkdir(parents=True)
        (target / "orjson" / "orjson.cpython-312-aarch64-linux-gnu.so").write_bytes(b"\x7fELF")


def test_layer_requirements_are_the_locked_closure_for_lambdas_platform() -> None:
    lines = packaging.layer_requirements(PROJECT_ROOT / "pyproject.toml")
    lock = lockfile.LockFile()
    pinned = {line.split("==")[0]: line.split("==")[1].split()[0] for line in lines}
    # the layer's own distributions and what they need, at the versions the tests run with
    for name in ("orjson", "aws-kinesis-agg", "aws-lambda-powertools", "jmespath"):
        assert pinned[name] == lock.version(name) == version(name)
    assert "boto3" not in pinned  # provided by the Lambda runtime, not in the layer
    assert all("--hash=sha256:" in line for line in lines)


def test_markers_are_evaluated_for_lambda_not_for_this_machine(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pipeline]\nlayer-requirements = ["a"]\n')
    (tmp_path / "uv.lock").write_text(LOCK)
    lines = packaging.layer_requirements(tmp_path / "pyproject.toml")
    assert [line.split()[0] for line in lines] == ["a==1.0", "arm-only==2.0", "b==3.1"]
    assert lines[0].split()[1:] == ["--hash=sha256:aaa", "--hash=sha256:a0"]


def test_a_layer_requirement_missing_from_the_lock_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pipeline]\nlayer-requirements = ["numpy"]\n')
    (tmp_path / "uv.lock").write_text(LOCK)
    with pytest.raises(PackagingError, match=r"\['numpy'\] are not dependencies"):
        packaging.layer_requirements(tmp_path / "pyproject.toml")


def test_the_cache_key_follows_requirements_and_runtime_sources(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    sources = packaging.runtime_sources(root)
    assert [p.relative_to(root).as_posix() for p in sources] == [
        "pipeline/__init__.py",
        "pipeline/runtime/__init__.py",
        "pipeline/runtime/envelope.py",
    ]
    base = packaging.layer_hash(["a>=1"], sources, root)
    assert packaging.layer_hash(["a>=1"], sources, root) == base
    assert packaging.layer_hash(["a>=2"], sources, root) != base
    (root / "pipeline" / "runtime" / "envelope.py").write_text("X = 2\n")
    assert packaging.layer_hash(["a>=1"], sources, root) != base


def test_the_shared_facts_the_runtime_imports_are_sources_too(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "pipeline" / "names.py").write_text("STAGE = 'dev'\n")
    (root / "pipeline" / "aws").mkdir()
    (root / "pipeline" / "aws" / "limits.py").write_text("N = 1\n")
    sources = packaging.runtime_sources(root)
    assert [p.relative_to(root).as_posix() for p in sources] == [
        "pipeline/__init__.py",
        "pipeline/names.py",
        "pipeline/aws/limits.py",
        "pipeline/runtime/__init__.py",
        "pipeline/runtime/envelope.py",
    ]


def test_build_is_cached_and_ships_only_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path)
    pip = FakePip()
    monkeypatch.setattr(packaging, "_pip_install", pip)
    first = packaging.build_layer(root)
    assert first.parent == root / ".build" / "layer"
    shipped = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert shipped == [
        "python/orjson/orjson.cpython-312-aarch64-linux-gnu.so",
        "python/pipeline/__init__.py",
        "python/pipeline/runtime/__init__.py",
        "python/pipeline/runtime/envelope.py",
    ]
    assert packaging.build_layer(root) == first
    assert len(pip.calls) == 1  # the second synth reused the cache
    (root / "pipeline" / "runtime" / "envelope.py").write_text("X = 3\n")
    second = packaging.build_layer(root)
    assert second != first
    assert (second / "python" / "pipeline" / "runtime" / "envelope.py").read_text() == "X = 3\n"
    assert len(pip.calls) == 1  # new sources, same requirements: no pip, so no network


def test_concurrent_builds_agree_and_leave_no_partial_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path)
    pip = FakePip(gate=threading.Barrier(2))
    monkeypatch.setattr(packaging, "_pip_install", pip)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(packaging.build_layer(root)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(pip.calls) == 2 and len(results) == 2
    assert results[0] == results[1]
    assert [p.name for p in (root / ".build" / "layer").iterdir()] == [results[0].name]
    assert (results[0] / "python" / "pipeline" / "runtime" / "envelope.py").read_text() == "X = 1\n"


def test_a_failed_pip_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path)
    monkeypatch.setattr(packaging, "_pip_install", FakePip(fail=True))
    with pytest.raises(PackagingError, match="no matching distribution"):
        packaging.build_layer(root)
    assert list((root / ".build" / "layer-deps").iterdir()) == []
    assert not (root / ".build" / "layer").exists()


@pytest.mark.synth
def test_the_assembly_layer_holds_runtime_and_aarch64_wheels(
    cloud_assembly: Path, stack_template: dict[str, Any]
) -> None:
    resources: dict[str, Any] = stack_template["Resources"]
    (layer,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    python = cloud_assembly / layer["Metadata"]["aws:asset:path"] / "python"
    assert (python / "pipeline" / "__init__.py").is_file()
    for source in packaging.runtime_sources():
        assert (python / source.relative_to(PROJECT_ROOT)).is_file()
    assert list((python / "orjson").glob("*aarch64-linux-gnu.so"))
    assert (python / "aws_lambda_powertools").is_dir() and (python / "aws_kinesis_agg").is_dir()
    assert not (python / "pipeline" / "local").exists()
    assert not (python / "boto3").exists()  # provided by the Lambda runtime


@pytest.mark.synth
def test_consumer_assets_are_their_folders_without_caches(
    cloud_assembly: Path, stack_template: dict[str, Any]
) -> None:
    resources: dict[str, Any] = stack_template["Resources"]
    for resource in resources.values():
        if (resource["Type"] != "AWS::Lambda::Function"
                or "POWERTOOLS_SERVICE_NAME" not in resource["Properties"].get(
                    "Environment", {}).get("Variables", {})):  # the waiter's functions
            continue
        name = resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        asset = cloud_assembly / resource["Metadata"]["aws:asset:path"]
        shipped = sorted(p.relative_to(asset) for p in asset.rglob("*") if p.is_file())
        assert shipped == list(packaging.asset_files(PROJECT_ROOT / "consumers" / name))
        assert json.loads((asset / "settings.json").read_text())
        assert not list(asset.rglob("__pycache__"))
