"""Command line of ``python -m loadtest``: parsing and validation into a frozen :class:`RunConfig`."""

from __future__ import annotations

import argparse
import math
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from loadtest.errors import ConfigError
from pipeline.aws.limits import WEBSOCKET_FRAME_BYTES, WEBSOCKET_NEW_CONNECTIONS_PER_SECOND
from pipeline.loadtest_report import RESULTS_DIR as RESULTS_DIR
from pipeline.loadtest_report import output_path as output_path
from pipeline.names import TWIN_AWS_PORT, TWIN_PORT

SCENARIOS = ("echo", "chat", "broadcast", "join-storm")
# API Gateway WebSocket frames are at most 32 KB:
# https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table
MAX_FRAME_BYTES = WEBSOCKET_FRAME_BYTES
MAX_CONNECTIONS = 20_000
MAX_RATE = 100_000.0
MAX_DURATION_S = 3600.0
DEFAULT_WARMUP_S = 3.0
DEFAULT_TWIN_PORT = TWIN_PORT
DEFAULT_AWS_PORT = TWIN_AWS_PORT
DEFAULT_RAMP = 200.0
# API Gateway's new-connection quota (per account and Region): the join storm's default pace.
NEW_CONNECTIONS_PER_S = float(WEBSOCKET_NEW_CONNECTIONS_PER_SECOND)
# The scenarios the Locust engine runs (--workers, --master, locustfile.py); broadcast's one
# publisher is the master (loadtest/live_broadcast.py).
LOCUST_SCENARIOS = ("echo", "chat", "broadcast")


def prepare_output(path: Path) -> None:
    """Create :data:`RESULTS_DIR` when ``path`` is in it (other folders must exist already)."""
    if path.parent == RESULTS_DIR:
        path.parent.mkdir(exist_ok=True)


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs. ``url`` None means: the local twin (started if none answers)."""

    scenario: str = "echo"
    url: str | None = None
    stage: str = "dev"
    connections: int = 10
    ramp: float = 200.0
    rate: float = 100.0
    duration: float = 10.0
    payload: int = 128
    room_size: int = 5
    drain: float = 5.0
    warmup: float = 0.0  # seconds of unrecorded traffic first (the command line's default: 3)
    connect_timeout: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    aws_endpoint: str | None = None
    start_twin: bool = True
    json_path: Path | None = None
    plot_path: Path | None = None
    progress: bool | None = None  # None: only when stdout is a terminal
    workers: int = 0  # >0: on Locust, a master and this many workers (loadtest/distributed.py)
    role: str = ""  # "master" / "worker": one side of a Locust run spread over machines
    master_host: str = "127.0.0.1"
    master_port: int | None = None

    def target_url(self, base: str) -> str:
        """``base`` with the ``--query`` parameters appended (for a token on ``$connect``)."""
        if not self.query:
            return base
        parts = urllib.parse.urlsplit(base)
        query = urllib.parse.parse_qsl(parts.query) + list(self.query)
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtest",
        description="Open-loop WebSocket latency load test (echo, chat, broadcast or join-storm). "
        "`python -m loadtest merge A.json B.json [-o OUT]` merges reports exactly.",
    )
    p.add_argument("--scenario", choices=SCENARIOS, default="echo")
    p.add_argument("--url", help="ws:// or wss:// URL of a stage (default: the local twin)")
    p.add_argument("--stage", default="dev", help="stage of the local twin (default dev)")
    p.add_argument("-c", "--connections", type=int, default=10, help="connections (default 10)")
    p.add_argument("--ramp", type=float, default=None,
                   help=f"connections opened per second (default {DEFAULT_RAMP:g}; join-storm: "
                        f"the new-connection quota, {NEW_CONNECTIONS_PER_S:g})")
    p.add_argument("-r", "--rate", type=float, default=100.0,
                   help="aggregate frames/s (broadcast: publishes/s); default 100")
    p.add_argument("-d", "--duration", type=float, default=10.0, help="seconds of sending")
    p.add_argument("--payload", type=int, default=128, help="frame size in bytes (default 128)")
    p.add_argument("--room-size", type=int, default=None,
                   help="chat: members per room (default 5); join-storm, and broadcast on Locust: "
                        "the room's members (the connections)")
    p.add_argument("--drain", type=float, default=5.0, help="seconds to wait for late replies")
    p.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, metavar="SECONDS",
                   help="seconds of unrecorded traffic on separate connections before measuring, "
                        f"so cold starts are not measured (default {DEFAULT_WARMUP_S:g}; 0: none)")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--header", action="append", default=[], metavar="K:V",
                   help="HTTP header on the $connect request (repeatable)")
    p.add_argument("--query", action="append", default=[], metavar="k=v",
                   help="query parameter on the $connect URL (repeatable)")
    p.add_argument("--aws-endpoint", help="broadcast: AWS endpoint for publish (twin: its aws URL)")
    p.add_argument("--no-start-twin", action="store_true",
                   help="fail instead of starting a twin when none answers on 127.0.0.1:8080")
    p.add_argument("--json", type=Path, help="write the JSON report (with HDR histograms) here; "
                   f"a bare file name goes to {RESULTS_DIR}/ (git-ignored)")
    p.add_argument("--plot", type=Path,
                   help=f"write a PNG plot here; a bare file name goes to {RESULTS_DIR}/")
    dist = p.add_argument_group("beyond one process (Locust; docs/loadtest/README.md)")
    dist.add_argument("--workers", type=int, default=0, metavar="N",
                      help="run on Locust: a master and N worker processes here (with --master: "
                           "the number of workers to wait for, started elsewhere)")
    role = dist.add_mutually_exclusive_group()
    role.add_argument("--master", dest="role", action="store_const", const="master", default="",
                      help="be the Locust master of --workers N workers on other machines")
    role.add_argument("--worker", dest="role", action="store_const", const="worker",
                      help="be one Locust worker of the master at --master-host")
    dist.add_argument("--master-host", default="127.0.0.1", help="--worker: the master's host")
    dist.add_argument("--master-port", type=int, default=None,
                      help="the master's port (default: 5557 across machines, a free port here)")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None)
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def _finite(option: str, value: float, low: float, high: float, low_inclusive: bool = False) -> None:
    ok = math.isfinite(value) and (value >= low if low_inclusive else value > low) and value <= high
    if not ok:
        bound = "[" if low_inclusive else "("
        raise ConfigError(option, f"{value} is outside {bound}{low:g}, {high:g}]")


def _pairs(option: str, items: list[str], sep: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise ConfigError(option, f"{item!r} is not of the form KEY{sep}VALUE")
        out.append((key.strip(), value.strip() if sep == ":" else value))
    return tuple(out)


def parse_run_args(argv: list[str]) -> RunConfig:
    """Parse and validate; raises :class:`ConfigError` with the flag and the reason."""
    ns = build_parser().parse_args(argv)
    if ns.ramp is None:
        ns.ramp = NEW_CONNECTIONS_PER_S if ns.scenario == "join-storm" else DEFAULT_RAMP
    room_given = ns.room_size is not None
    ns.room_size = 5 if ns.room_size is None else ns.room_size
    if ns.scenario == "broadcast" and (ns.workers or ns.role):  # one room of every connection
        if room_given:
            ns.connections = ns.room_size
        ns.room_size = ns.connections
    if ns.scenario == "join-storm":  # one connection per member: -c is the room's size
        if not 2 <= ns.room_size <= MAX_CONNECTIONS:
            raise ConfigError("--room-size", f"{ns.room_size} is outside [2, {MAX_CONNECTIONS}]")
        ns.connections = ns.room_size
    if not 1 <= ns.connections <= MAX_CONNECTIONS:
        raise ConfigError("--connections", f"{ns.connections} is outside [1, {MAX_CONNECTIONS}]")
    _finite("--rate", ns.rate, 0, MAX_RATE)
    _finite("--duration", ns.duration, 0, MAX_DURATION_S)
    _finite("--ramp", ns.ramp, 0, 100_000)
    _finite("--drain", ns.drain, 0, 600, low_inclusive=True)
    _finite("--warmup", ns.warmup, 0, 600, low_inclusive=True)
    _finite("--connect-timeout", ns.connect_timeout, 0, 120)
    if not 0 <= ns.payload <= MAX_FRAME_BYTES:
        raise ConfigError(
            "--payload", f"{ns.payload} is outside [0, {MAX_FRAME_BYTES}] (API Gateway frame limit)"
        )
    if ns.scenario == "chat" and not 2 <= ns.room_size <= ns.connections:
        raise ConfigError("--room-size", f"{ns.room_size} must be in [2, connections={ns.connections}]")
    if not 0 <= ns.workers <= 1024:
        raise ConfigError("--workers", f"{ns.workers} is outside [0, 1024]")
    if ns.workers > ns.connections:  # a worker without a connection would never report
        raise ConfigError("--workers", f"{ns.workers} workers need at least as many connections "
                          f"(-c {ns.connections})")
    if ns.role == "master" and ns.workers < 1:
        raise ConfigError("--master", "needs --workers N (how many workers to wait for)")
    if (ns.workers or ns.role == "master") and ns.scenario not in LOCUST_SCENARIOS:
        raise ConfigError("--scenario", f"the Locust engine runs {' and '.join(LOCUST_SCENARIOS)} "
                          f"only; {ns.scenario} runs in one process (without --workers)")
    if ns.master_port is not None and not 1 <= ns.master_port <= 65535:
        raise ConfigError("--master-port", f"{ns.master_port} is not a port")
    ns.json, ns.plot = output_path(ns.json), output_path(ns.plot)
    for option, path in (("--json", ns.json), ("--plot", ns.plot)):
        if path is not None and path.parent != RESULTS_DIR and not path.resolve().parent.is_dir():
            raise ConfigError(option, f"directory {path.resolve().parent} does not exist")
    if ns.url is not None:
        scheme = urllib.parse.urlsplit(ns.url).scheme
        if scheme not in ("ws", "wss") or not urllib.parse.urlsplit(ns.url).hostname:
            raise ConfigError("--url", f"{ns.url!r} is not a ws:// or wss:// URL")
    return RunConfig(
        scenario=ns.scenario,
        url=ns.url,
        stage=ns.stage,
        connections=ns.connections,
        ramp=ns.ramp,
        rate=ns.rate,
        duration=ns.duration,
        payload=ns.payload,
        room_size=ns.room_size,
        drain=ns.drain,
        warmup=ns.warmup,
        connect_timeout=ns.connect_timeout,
        headers=_pairs("--header", ns.header, ":"),
        query=_pairs("--query", ns.query, "="),
        aws_endpoint=ns.aws_endpoint,
        start_twin=not ns.no_start_twin,
        json_path=ns.json,
        plot_path=ns.plot,
        progress=ns.progress,
        workers=ns.workers,
        role=ns.role,
        master_host=ns.master_host,
        master_port=ns.master_port,
    )


def system_proxy(url: str) -> str | None:
    """The proxy a WebSocket connection to ``url`` goes through (the environment's
    ``https_proxy``/``http_proxy``/``all_proxy`` and ``no_proxy``, as ``websockets`` reads them),
    found once for a run: ``websockets`` reads the whole environment again on every connect
    unless given the answer (5 % of the load generator's CPU in a 1,000-connection storm)."""
    from websockets.proxy import get_proxy
    from websockets.uri import parse_uri

    return get_proxy(parse_uri(url))
