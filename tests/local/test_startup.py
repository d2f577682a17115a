"""Ready means ready: the twin accepts no connection before every part can carry its frames.

A client that connects the moment the port accepts TCP (what wait-for-port scripts, container
health checks and CI steps do) must get its echo answered, and must not slow start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import websockets

from pipeline.local.harness import PROJECT_ROOT

pytestmark = [pytest.mark.twin, pytest.mark.synth]
DEADLINE_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts_tcp(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


async def test_a_client_connecting_as_soon_as_the_port_opens_is_answered(
        cloud_assembly: Path) -> None:
    port = _free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "local", "--no-synth", "--assembly",
         str(cloud_assembly), "--port", str(port), "--aws-port", "0", "--function-logs", "-"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ready = threading.Event()
    ready_after: list[float] = []
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("TWIN-READY "):
                ready_after.append(time.monotonic() - started)
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = started + DEADLINE_S
        while not _accepts_tcp(port):  # a wait-for-port loop, as a health check does it
            assert proc.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "port never opened:\n" + "".join(output)
            await asyncio.sleep(0.01)
        opened_after = time.monotonic() - started
        async with websockets.connect(f"ws://127.0.0.1:{port}/dev", open_timeout=10) as ws:
            await ws.send(json.dumps({"action": "echo", "data": "early"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert reply["action"] == "echo" and reply["data"] == "early"
        assert await asyncio.to_thread(ready.wait, DEADLINE_S), "".join(output)
        # TWIN-READY follows the port by no more than start-up's own last steps (printing).
        assert ready_after[0] - opened_after < 5.0, (opened_after, ready_after)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


BREAK_THE_READ_PATH = '''
# Loaded by the twin's interpreter (sitecustomize): every read of a shard by a mapping fails, the
# way moto 5.2.6's changed record model made every read of the old twin fail.
from pipeline.local import shard_source

def _broken(self, *args, **kwargs):
    raise TypeError("float() argument must be a string or a real number, not 'datetime.datetime'")

shard_source.KinesisShardSource.read = _broken
'''


def test_a_twin_whose_mappings_cannot_read_never_says_ready(
        cloud_assembly: Path, tmp_path: Path) -> None:
    """Ready means working: start-up reads a canary back through every mapping's read path, so a
    broken read path fails the start in one line, naming the mapping and the error."""
    (tmp_path / "sitecustomize.py").write_text(BREAK_THE_READ_PATH)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "local", "--no-synth", "--assembly",
         str(cloud_assembly), "--port", "0", "--aws-port", "0", "--ready-timeout", "5",
         "--function-logs", str(tmp_path / "logs")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=DEADLINE_S)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TWIN-READY" not in done.stdout
    failure = done.stderr.strip().splitlines()[-1]
    assert failure.startswith("local twin failed to start: "), done.stderr
    assert "did not read the start-up canary" in failure, failure
    assert "float() argument must be a string or a real number" in done.stderr
    # the reader's failure is said once per reader, not as a stream of tracebacks
    assert "Traceback" not in done.stderr
