"""A newcomer's expected mistakes (issue 16): each ends in one clear line and a non-zero exit.

Every test runs the real command in a subprocess, as a user types it, and asserts the exit
status, the one line on stderr and that no traceback was printed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str, cwd: Path = PROJECT_ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m ARGV`` in ``cwd``, output captured."""
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def one_line(stderr: str) -> str:
    """stderr must be exactly one line with no traceback; returns it."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on (127.0.0.1), as a running twin's would be."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- 1. starting the twin twice -------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--port", "--aws-port"])
def test_a_busy_port_is_one_line_before_any_synth(
    flag: str, busy_port: int, tmp_path: Path
) -> None:
    other = "--aws-port" if flag == "--port" else "--port"
    assembly = tmp_path / "cdk.out"  # synthesizing would create it
    done = run("pipeline", "local", flag, str(busy_port), other, "0", "--assembly", str(assembly),
               timeout=60)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line == (f"port {busy_port} is in use (a twin is probably already running: stop it, "
                    "or use --port/--aws-port)")
    assert "synthesizing" not in done.stdout and not assembly.exists()
