"""Start and stop a local twin from tests or scripts: ``start_twin(assembly)`` -> :class:`TwinProcess`.

The twin runs as its own process (``python -m pipeline local``) exactly as a user runs it; this
module waits for its ``TWIN-READY`` line (docs/contracts.md) and stops it with SIGTERM.
Used by the project's tests, the load test and the generated consumer tests.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import PROJECT_ROOT as PROJECT_ROOT  # re-exported for tests and scripts
from pipeline.local.errors import TwinStartError as TwinStartError  # re-exported for scripts
from pipeline.names import TWIN_AWS_PORT, TWIN_PORT

TWIN_START_TIMEOUT_S = 90.0
OUTPUT_LINES = 10_000
DEFAULT_PORT = TWIN_PORT  # where `make local` serves (python -m pipeline local's defaults)
DEFAULT_AWS_PORT = TWIN_AWS_PORT


@dataclass(frozen=True)
class TwinProcess:
    """A running local twin: its URLs, its process and the tail of its output."""

    ws: str
    connections: str
    aws: str
    process: subprocess.Popen[str]
    output: collections.deque[str]
    issuer: str | None = None  # auth=jwt: the twin's OIDC issuer URL
    # held while the output thread appends: iterating the deque meanwhile raises RuntimeError
    output_lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def lines(self) -> list[str]:
        """A snapshot of the output's tail, safe while the twin keeps writing."""
        return _snapshot(self.output, self.output_lock)


# The name consumer tests generated before the rename import (pipeline/scaffold_templates).
Twin = TwinProcess


def running_twin(stage: str = "dev", port: int = DEFAULT_PORT,
                 aws_port: int = DEFAULT_AWS_PORT) -> tuple[str, str] | None:
    """``(ws URL, AWS URL)`` of a twin already serving on 127.0.0.1 (``make local``), or None
    when nothing accepts connections on ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            pass
    except OSError:
        return None
    return f"ws://127.0.0.1:{port}/{stage}", f"http://127.0.0.1:{aws_port}"


def launch_twin(
    args: Sequence[str], *, cwd: Path = PROJECT_ROOT, timeout: float = TWIN_START_TIMEOUT_S
) -> TwinProcess:
    """Run ``python -m pipeline local *args`` and wait for its ``TWIN-READY`` line.

    The output keeps being read (so the twin never blocks on a full pipe); the last
    :data:`OUTPUT_LINES` lines stay in :attr:`TwinProcess.output`. Raises :class:`TwinStartError`
    with that output when the twin exits or is not ready within ``timeout`` seconds.
    """
    cmd = [sys.executable, "-m", "pipeline", "local", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    output: collections.deque[str] = collections.deque(maxlen=OUTPUT_LINES)
    lock = threading.Lock()
    ready: dict[str, str] = {}
    got_ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with lock:
                output.append(line)
            if line.startswith("TWIN-READY ") and not ready:
                ready.update(json.loads(line.split(" ", 1)[1]))
                got_ready.set()
        got_ready.set()

    threading.Thread(target=pump, daemon=True, name="twin-output").start()
    if not got_ready.wait(timeout):
        proc.kill()
        proc.wait()
        raise TwinStartError(f"twin did not start in {timeout:g} s ({' '.join(cmd)}):\n"
                             + "".join(_snapshot(output, lock)))
    if not ready:
        raise TwinStartError("twin exited before it was ready:\n"
                             + "".join(_snapshot(output, lock)))
    return TwinProcess(ready["ws"], ready["connections"], ready["aws"], proc, output,
                       ready.get("issuer"), lock)


def _snapshot(output: collections.deque[str], lock: threading.Lock) -> list[str]:
    with lock:
        return list(output)


def start_twin(
    assembly: Path, *extra_args: str, stage: str = "dev", cwd: Path = PROJECT_ROOT
) -> TwinProcess:
    """A twin for tests: an existing assembly, free ports, the functions' logs inline.

    ``cwd`` is the project whose ``pipeline`` package runs (a copy, in the scaffold test).
    The functions' logs stay inline in :attr:`TwinProcess.output`, where a failing test shows them.
    """
    return launch_twin(
        ["--no-synth", "--assembly", str(assembly), "--stage", stage, "--port", "0",
         "--aws-port", "0", "--function-logs", "-", *extra_args],
        cwd=cwd,
    )


def stop_twin(twin: TwinProcess) -> int:
    """SIGTERM the twin and return its exit code (killing it if it does not stop in 20 s)."""
    twin.process.send_signal(signal.SIGTERM)
    try:
        return twin.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        twin.process.kill()
        twin.process.wait()
        raise
