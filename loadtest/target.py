"""Where the load goes: a given URL, a twin already on 127.0.0.1:8080, or a twin started here."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.config import DEFAULT_AWS_PORT, DEFAULT_TWIN_PORT, RunConfig
from loadtest.errors import TargetError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TWIN_START_TIMEOUT_S = 180.0  # includes a CDK synth (~10 s) and the twin's own start


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Target:
    """The resolved target; ``process`` is set when this run started the twin (and must stop it)."""

    ws: str
    aws: str | None
    connections: str | None = None  # the @connections URL as the twin announces it
    process: subprocess.Popen[str] | None = None
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))

    def stop(self) -> None:
        """Stop a twin this run started (SIGTERM, then kill after 20 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_twin(stage: str, args: tuple[str, ...] = (), timeout: float = TWIN_START_TIMEOUT_S) -> Target:
    """Run ``python -m pipeline local`` and wait for its ``TWIN-READY`` line (docs/contracts.md)."""
    cmd = [sys.executable, "-m", "pipeline", "local", "--stage", stage, *args]
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    target = Target(ws="", aws=None, process=proc)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # keep reading so the twin never blocks on a full pipe
            target.output.append(line)
            if line.startswith("TWIN-READY ") and not ready.is_set():
                with_urls = json.loads(line.split(" ", 1)[1])
                target.ws, target.aws = with_urls["ws"], with_urls.get("aws")
                target.connections = with_urls.get("connections")
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True, name="twin-output").start()
    if not ready.wait(timeout) or not target.ws:
        target.stop()
        tail = "".join(list(target.output)[-30:])
        raise TargetError(f"the local twin did not become ready ({' '.join(cmd)}):\n{tail}")
    return target


def resolve(cfg: RunConfig, log: bool = True) -> Target:
    """``--url`` as given; else the twin on 127.0.0.1:8080; else start one (unless told not to)."""
    if cfg.url is not None:
        return Target(ws=cfg.url, aws=cfg.aws_endpoint)
    if port_answers(DEFAULT_TWIN_PORT):
        aws = cfg.aws_endpoint or f"http://127.0.0.1:{DEFAULT_AWS_PORT}"
        base = f"127.0.0.1:{DEFAULT_TWIN_PORT}/{cfg.stage}"
        return Target(ws=f"ws://{base}", aws=aws, connections=f"http://{base}/@connections")
    if not cfg.start_twin:
        raise TargetError(f"nothing answers on 127.0.0.1:{DEFAULT_TWIN_PORT} (--no-start-twin)")
    if log:
        print("no twin on 127.0.0.1:8080: starting `python -m pipeline local` ...", flush=True)
    t0 = time.perf_counter()
    target = start_twin(cfg.stage)
    if log:
        print(f"twin ready in {time.perf_counter() - t0:.1f} s: {target.ws}", flush=True)
    return target
