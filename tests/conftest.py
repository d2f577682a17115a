"""Session-wide fixtures: one CDK synth and one local twin per test session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TWIN_START_TIMEOUT_S = 90.0


@pytest.fixture(scope="session")
def cloud_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthesized `dev` cloud assembly (synthesized once per session, ~10 s)."""
    from pipeline.infrastructure.synth import synthesize

    outdir = tmp_path_factory.mktemp("cdk.out")
    return synthesize(outdir, {"stage": "dev"})


@pytest.fixture(scope="session")
def stack_template(cloud_assembly: Path) -> dict[str, object]:
    """The `WebSocketPipeline-dev` CloudFormation template as a dict."""
    path = cloud_assembly / "WebSocketPipeline-dev.template.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Twin:
    """A running local twin: its URLs and its process."""

    ws: str
    connections: str
    aws: str
    process: subprocess.Popen[str]
    output: list[str]


def start_twin(
    assembly: Path, *extra_args: str, stage: str = "dev", cwd: Path = PROJECT_ROOT
) -> Twin:
    """Start ``python -m pipeline local`` on free ports and wait for its ready line.

    ``cwd`` is the project whose ``pipeline`` package runs (a copy, in the scaffold test).
    """
    cmd = [
        sys.executable, "-m", "pipeline", "local", "--no-synth", "--assembly", str(assembly),
        "--stage", stage, "--port", "0", "--aws-port", "0", *extra_args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    output: list[str] = []
    ready: dict[str, str] = {}
    got_ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("TWIN-READY ") and not ready:
                ready.update(json.loads(line.split(" ", 1)[1]))
                got_ready.set()
        got_ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + TWIN_START_TIMEOUT_S
    while not got_ready.wait(0.1):
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("twin did not start in time:\n" + "".join(output))
    if not ready:
        raise RuntimeError("twin exited before it was ready:\n" + "".join(output))
    return Twin(ready["ws"], ready["connections"], ready["aws"], proc, output)


def stop_twin(twin: Twin) -> int:
    """SIGTERM the twin and return its exit code (killing it if it does not stop in 20 s)."""
    twin.process.send_signal(signal.SIGTERM)
    try:
        return twin.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        twin.process.kill()
        twin.process.wait()
        raise


@pytest.fixture(scope="session")
def twin(cloud_assembly: Path) -> Iterator[Twin]:
    """One local twin for the session, serving the `dev` assembly."""
    running = start_twin(cloud_assembly)
    yield running
    stop_twin(running)
