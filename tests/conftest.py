"""Session-wide fixtures: one CDK synth and one local twin per test session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.local.harness import TwinProcess, start_twin, stop_twin

__all__ = ["TwinProcess", "start_twin", "stop_twin"]

# The runtime's fixtures (@connections stub, moto roster, handler context), shared by
# tests/runtime and tests/consumers; a plugin must be named here, in the top-level conftest.
pytest_plugins = ["runtime_kit.fixtures"]



@pytest.fixture(scope="session")
def cloud_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthesized `dev` cloud assembly (synthesized once per session, ~10 s)."""
    from pipeline.infrastructure.synth import synthesize

    outdir = tmp_path_factory.mktemp("cdk.out")
    return synthesize(outdir, {"stage": "dev"})


@pytest.fixture(scope="session")
def prod_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthesized `prod` assembly: HS256 token auth on $connect (prod's default is jwt,
    which needs an issuer), 4 shards, 48 h retention."""
    from pipeline.infrastructure.synth import synthesize

    outdir = tmp_path_factory.mktemp("cdk.out.prod")
    return synthesize(outdir, {"stage": "prod", "shards": "4", "retentionHours": "48",
                               "auth": "token"})


@pytest.fixture(scope="session")
def jwt_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `dev` assembly with auth=jwt, as `python -m pipeline local -c auth=jwt` synthesizes it."""
    from pipeline.infrastructure.synth import synthesize
    from pipeline.local.cli import parse_context

    outdir = tmp_path_factory.mktemp("cdk.out.jwt")
    return synthesize(outdir, parse_context(["auth=jwt"], "dev"))


@pytest.fixture(scope="session")
def stack_template(cloud_assembly: Path) -> dict[str, object]:
    """The `WebSocketPipeline-dev` CloudFormation template as a dict."""
    path = cloud_assembly / "WebSocketPipeline-dev.template.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def twin(cloud_assembly: Path) -> Iterator[TwinProcess]:
    """One local twin for the session, serving the `dev` assembly."""
    running = start_twin(cloud_assembly)
    yield running
    stop_twin(running)
