"""Load tests beyond one process, on Locust: worker payloads, the master's exact merge, and the
``python -m loadtest --workers N`` / ``--master`` / ``--worker`` launcher.

Nothing here imports Locust or gevent: Locust monkeypatches the standard library at import, so it
only ever runs in its own processes (``python -m locust -f loadtest/locustfile.py``), started here
as subprocesses. This module is what both sides share: the payload a worker sends its master at
the end of a run (its report, with exact HDR histograms, and its CPU time) and the merge into one
report with ``engine: "locust"`` and a row per worker.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from loadtest.config import LOCUST_SCENARIOS, RunConfig, prepare_output
from loadtest.errors import ConfigError, TargetError
from loadtest.report import Report, merge

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
REPO_ROOT = LOCUSTFILE.parent.parent
MESSAGE = "loadtest_report"  # the custom Locust message a worker sends its master at the end
DEFAULT_MASTER_PORT = 5557  # Locust's own default
SAFETY_S = 30.0  # Locust's --run-time past the expected end: a bound, not the normal ending
ROW_KEYS = ("sent", "expected", "received", "lost", "duplicated", "outOfOrder", "unexpected",
            "errorFrames", "connectionsOpened", "connectFailed")  # fmt: skip


def cpu_per_frame_us(cpu_s: float, frames: int) -> float:
    """The generator's CPU time per frame sent (and its reply received), in microseconds."""
    return round(cpu_s * 1e6 / frames, 1) if frames else 0.0


def frames_of(totals: Any) -> int:
    """The frames a generator's CPU is counted over: those it sent (a broadcast member sends
    none: those it received)."""
    return int(totals["sent"] or totals["received"])


def worker_payload(worker: str, report: Report, cpu_s: float,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """What a worker sends its master: its whole report (histograms encoded), its CPU time, and
    what its scenario adds (broadcast: its deliveries per message, loadtest/live_broadcast.py)."""
    report.meta["generatorCpuPerFrameUs"] = cpu_per_frame_us(cpu_s, frames_of(report.totals))
    return {"worker": worker, "cpuS": cpu_s, "report": report.to_json(), **(extra or {})}


def worker_row(payload: dict[str, Any], report: Report) -> dict[str, Any]:
    t = report.totals
    return {
        "worker": str(payload["worker"]),
        **{k: int(t[k]) for k in ROW_KEYS},
        "durationS": report.duration_s,
        "sentPerS": report.achieved()["sentPerS"],
        "cpuS": round(float(payload["cpuS"]), 3),
        "generatorCpuPerFrameUs": cpu_per_frame_us(float(payload["cpuS"]), frames_of(t)),
    }


def merge_workers(payloads: list[dict[str, Any]]) -> Report:
    """The master's report: every worker's report merged exactly (counters summed, histograms
    added bucket by bucket), with ``engine: "locust"``, the worker count and a row per worker.
    Broadcast: the master's publisher is one more row (``publisher``, its messages sent), and
    the broadcast's facts are added (loadtest/live_broadcast.py)."""
    names = [str(p["worker"]) for p in payloads]
    reports = [Report.from_json(p["report"], f"worker {n}") for p, n in zip(payloads, names, strict=True)]
    out = merge(reports, names)
    cpu_s = sum(float(p["cpuS"]) for p in payloads)
    out.meta.update(
        engine="locust",
        workerCount=sum(1 for p in payloads if "publisher" not in p),
        workers=[worker_row(p, r) for p, r in zip(payloads, reports, strict=True)],
        generatorCpuS=round(cpu_s, 3),
        generatorCpuPerFrameUs=cpu_per_frame_us(cpu_s, sum(frames_of(r.totals) for r in reports)),
    )
    if any("publisher" in p for p in payloads):
        from loadtest.live_broadcast import broadcast_facts

        broadcast_facts(out, payloads)
    return out


# --- the launcher (no Locust import: Locust runs in the subprocesses) ------------------------
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def run_time_s(cfg: RunConfig) -> int:
    """Locust's ``--run-time``: the ramp, the sending, the drain and a margin. The run normally
    ends earlier, when every worker has drained and reported."""
    return math.ceil(cfg.connections / cfg.ramp + cfg.duration + cfg.drain + SAFETY_S)


def scenario_args(cfg: RunConfig, json_path: Path | None, aws: str | None = None) -> list[str]:
    """The locustfile's own options (``--lt-*``); Locust passes them on to every worker.
    ``aws``: broadcast's AWS endpoint (the master publishes through it)."""
    args = [
        "--lt-scenario", cfg.scenario, "--lt-user-rate", repr(cfg.rate / cfg.connections),
        "--lt-duration", repr(cfg.duration), "--lt-payload", str(cfg.payload),
        "--lt-drain", repr(cfg.drain), "--lt-connect-timeout", repr(cfg.connect_timeout),
        "--lt-room-size", str(cfg.room_size), "--lt-quiet",
    ]  # fmt: skip
    if cfg.scenario == "broadcast":
        args += ["--lt-rate", repr(cfg.rate), *(["--lt-aws-endpoint", aws] if aws else [])]
    if cfg.query:
        args += ["--lt-query", urllib.parse.urlencode(list(cfg.query))]
    if cfg.headers:
        args += ["--lt-headers", json.dumps([list(h) for h in cfg.headers])]
    if json_path is not None:
        args += ["--lt-json", str(json_path.resolve())]
    return args


def master_command(cfg: RunConfig, url: str, json_path: Path | None, *, expect: int,
                   bind_host: str, port: int, aws: str | None = None) -> list[str]:  # fmt: skip
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--master", "--headless",
        "--expect-workers", str(expect), "--expect-workers-max-wait", "120",
        "--master-bind-host", bind_host, "--master-bind-port", str(port),
        "-u", str(cfg.connections), "-r", repr(cfg.ramp), "-t", f"{run_time_s(cfg)}s",
        "--host", url, "--only-summary", "--loglevel", "WARNING",
        *scenario_args(cfg, json_path, aws),
    ]  # fmt: skip


def worker_command(master_host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
            "--master-host", master_host, "--master-port", str(port), "--loglevel", "WARNING"]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def run_distributed(cfg: RunConfig, url: str, json_path: Path, *, local_workers: int, expect: int,
                    bind_host: str = "127.0.0.1", port: int | None = None,
                    aws: str | None = None) -> Report:  # fmt: skip
    """A Locust master (here) expecting ``expect`` workers, ``local_workers`` of them started
    here too; returns the merged report the master wrote to ``json_path``. ``aws``: the AWS
    endpoint broadcast publishes through (None: boto3's default, a deployed stage's)."""
    if cfg.scenario not in LOCUST_SCENARIOS:
        raise ConfigError("--scenario", f"the Locust engine runs {' and '.join(LOCUST_SCENARIOS)} (for now)")
    port = port if port is not None else (free_port() if local_workers == expect else DEFAULT_MASTER_PORT)
    json_path.unlink(missing_ok=True)
    env = _env()
    master = subprocess.Popen(master_command(cfg, url, json_path, expect=expect,
                                             bind_host=bind_host, port=port, aws=aws),
                              env=env)  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    try:
        workers = [subprocess.Popen(worker_command("127.0.0.1", port), env=env)
                   for _ in range(local_workers)]  # fmt: skip
        deadline = run_time_s(cfg) + 180.0  # + waiting for the workers and Locust's own shutdown
        try:
            master.wait(timeout=deadline)
        except subprocess.TimeoutExpired as exc:
            raise TargetError(f"the Locust master did not finish within {deadline:.0f} s") from exc
        for w in workers:  # the master's quit message ends them; a worker that hangs is stopped
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.wait(timeout=15)
    finally:
        for proc in (master, *workers):
            _stop(proc)
    if not json_path.exists():
        raise TargetError(f"the Locust master wrote no report (exit code {master.returncode})")
    return Report.read(json_path)


def run_worker(master_host: str, port: int) -> int:
    """``python -m loadtest --worker --master-host HOST``: one Locust worker, until its master quits."""
    proc = subprocess.Popen(worker_command(master_host, port), env=_env())
    try:
        return proc.wait()
    finally:
        _stop(proc)


def report_path(cfg: RunConfig) -> Path:
    """Where the master writes the report: ``--json``, else a file in loadtest-results/."""
    path = cfg.json_path or Path("loadtest-results") / f"locust-{time.strftime('%Y%m%d-%H%M%S')}.json"
    prepare_output(path)
    return path
