"""Start and stop a local twin from tests or scripts: ``start_twin(assembly)`` -> :class:`Twin`.

The twin runs as its own process (``python -m pipeline local``) exactly as a user runs it; this
module waits for its ``TWIN-READY`` line (docs/contracts.md) and stops it with SIGTERM.
Used by the project's tests, the load test and the generated consumer tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TWIN_START_TIMEOUT_S = 90.0


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
    The functions' logs stay inline in :attr:`Twin.output`, where a failing test shows them.
    """
    cmd = [
        sys.executable, "-m", "pipeline", "local", "--no-synth", "--assembly", str(assembly),
        "--stage", stage, "--port", "0", "--aws-port", "0", "--function-logs", "-", *extra_args,
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
