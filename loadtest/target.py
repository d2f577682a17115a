"""Where the load goes: a given URL, a twin already on 127.0.0.1:8080, or a twin started here."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass

from loadtest.config import DEFAULT_AWS_PORT, DEFAULT_TWIN_PORT, RunConfig
from loadtest.errors import TargetError
from pipeline.local.errors import TwinStartError
from pipeline.local.harness import TwinProcess, launch_twin, stop_twin

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
    """The resolved target; ``twin`` is set when this run started the twin (and must stop it)."""

    ws: str
    aws: str | None
    connections: str | None = None  # the @connections URL as the twin announces it
    twin: TwinProcess | None = None

    @property
    def process(self) -> subprocess.Popen[str] | None:
        return self.twin.process if self.twin is not None else None

    def stop(self) -> None:
        """Stop a twin this run started (SIGTERM, then kill after 20 s)."""
        if self.twin is not None and self.twin.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # killed after 20 s
                stop_twin(self.twin)


def start_twin(stage: str, args: tuple[str, ...] = (), timeout: float = TWIN_START_TIMEOUT_S) -> Target:
    """Run ``python -m pipeline local`` (synthesizing first) and wait until it is ready."""
    try:
        twin = launch_twin(["--stage", stage, *args], timeout=timeout)
    except TwinStartError as exc:
        raise TargetError(f"the local twin did not become ready: {exc}") from exc
    return Target(ws=twin.ws, aws=twin.aws, connections=twin.connections, twin=twin)


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
