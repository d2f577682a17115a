"""The Docker-free layer build: requirements, cache key, atomic cached build, assembly content."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline import PROJECT_ROOT
from pipeline.infrastructure import PackagingError, packaging

PYPROJECT = """
[project]
dependencies = ["orjson>=3.9,<4", "Aws_Kinesis.Agg>=1.2,<2", "boto3>=1.34"]
[tool.pipeline]
layer-requirements = ["orjson", "aws-kinesis-agg"]
"""


def make_project(root: Path, pyproject: str = PYPROJECT) -> Path:
    (root / "pipeline" / "runtime" / "__pycache__").mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
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


def test_layer_requirements_take_the_ranges_from_project_dependencies(tmp_path: Path) -> None:
    make_project(tmp_path)
    assert packaging.layer_requirements(tmp_path / "pyproject.toml") == [
        "orjson>=3.9,<4",
        "Aws_Kinesis.Agg>=1.2,<2",
    ]


def test_a_layer_requirement_missing_from_dependencies_is_an_error(tmp_path: Path) -> None:
    make_project(tmp_path, PYPROJECT.replace('"aws-kinesis-agg"', '"numpy"'))
    with pytest.raises(PackagingError, match=r"\['numpy'\] are not in \[project\].dependencies"):
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
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        name = resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        asset = cloud_assembly / resource["Metadata"]["aws:asset:path"]
        shipped = sorted(p.relative_to(asset) for p in asset.rglob("*") if p.is_file())
        assert shipped == list(packaging.asset_files(PROJECT_ROOT / "consumers" / name))
        assert json.loads((asset / "settings.json").read_text())
        assert not list(asset.rglob("__pycache__"))
