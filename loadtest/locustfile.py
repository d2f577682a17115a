"""The load test's scenarios as Locust users: ``locust -f loadtest/locustfile.py --host ws://...``.

Importing this module imports Locust, which monkeypatches the standard library for gevent: only
Locust's own processes import it (``python -m loadtest --workers N`` starts them as
subprocesses; loadtest/distributed.py holds everything the rest of the package shares with it).

One user is one WebSocket connection (websocket-client, cooperative under gevent's patching). It
sends ``--lt-user-rate`` frames/s on an **open-loop** timeline for ``--lt-duration`` seconds from
the moment it connects (latency is measured from each frame's intended send time, so a slow
server cannot slow the offered load down), then waits up to ``--lt-drain`` seconds for the last
replies and stops. Every reply fires a Locust request event (the UI and the CSV show it), and
the worker records it exactly as ``python -m loadtest`` does: HDR histograms (latency, service,
the stages of the reply's ``timing``) and per-connection loss / duplicate / order accounting.
When all its users are done (or the run is stopped), the worker sends its report to the master
(a custom message); the master merges the workers' reports exactly and writes the JSON report.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import gevent
import orjson
import websocket
from gevent.event import Event
from locust import User, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # plain `locust -f loadtest/...`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest import stages
from loadtest.accounting import Ledger, SeqOutcome
from loadtest.distributed import MESSAGE, merge_workers, worker_payload
from loadtest.machine import machine
from loadtest.report import Report, format_summary
from loadtest.runner import LOCAL_HOSTS, Clock, pad_frame
from loadtest.schedule import Timeline
from pipeline.names import twin_ws_url

DEFAULT_HOST = twin_ws_url()
DEFAULT_REPORT = "loadtest-results/locust.json"
MASTER_WAIT_S = 10.0  # how long a master that is told to quit waits for the workers' reports


def _options(parser: Any) -> None:
    group = parser  # Locust's own parser: its groups do not know Locust's is_secret
    group.add_argument("--lt-scenario", choices=["echo"], default="echo", help="scenario")
    group.add_argument("--lt-user-rate", type=float, default=1.0,
                       help="frames/s each user (connection) sends, open loop")
    group.add_argument("--lt-duration", type=float, default=3600.0,
                       help="seconds each user sends for, from its connect (then it drains and stops)")
    group.add_argument("--lt-payload", type=int, default=128, help="frame size in bytes")
    group.add_argument("--lt-drain", type=float, default=5.0, help="seconds to wait for late replies")
    group.add_argument("--lt-connect-timeout", type=float, default=10.0)
    group.add_argument("--lt-query", default="", help="query string on $connect (e.g. token=...)",
                       is_secret=True)
    group.add_argument("--lt-headers", default="", is_secret=True,
                       help='headers on $connect, JSON: [["Authorization", "Bearer ..."]]')
    group.add_argument("--lt-json", default=DEFAULT_REPORT, help="the merged report (master)")
    group.add_argument("--lt-plot", default="", help="a PNG of the merged report (master)")
    group.add_argument("--lt-quiet", action="store_true",
                       help="do not print the merged summary (python -m loadtest prints it)")


@dataclass
class Connection:
    """One user's connection: what it sent and what came back."""

    id: int
    ws: websocket.WebSocket | None = None
    sent: int = 0
    sending_done: bool = False
    finished: bool = False
    ledger: Ledger = field(default_factory=Ledger)
    drained: Event = field(default_factory=Event)


class Recorder:
    """This process's share of the run (one per worker): the report and every connection."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.report = Report()
        self.run_id = secrets.token_hex(4)
        self.clock = Clock()
        self.start_us = 0.0
        self.cpu0 = 0.0
        self.t0 = 0.0
        self.last_send = 0.0
        self.conns: list[Connection] = []
        self.done = 0
        self.reported = False

    def open(self) -> Connection:
        if not self.conns:
            self.start_us, self.cpu0, self.t0 = self.clock.now_us(), time.process_time(), time.perf_counter()
        conn = Connection(len(self.conns))
        self.conns.append(conn)
        return conn

    def connection_done(self, environment: Environment, conn: Connection) -> None:
        if conn.finished:
            return
        conn.finished = True
        self.done += 1
        runner = environment.runner
        if runner is not None and self.done >= runner.target_user_count:
            self.send_report(environment)

    def send_report(self, environment: Environment) -> None:
        """Close the books and send them to the master (once per run)."""
        if self.reported or not self.conns or environment.runner is None:
            return
        self.reported = True
        cpu_s = time.process_time() - self.cpu0
        report, totals = self.report, self.report.totals
        opts = environment.parsed_options
        report.duration_s = round((self.last_send or time.perf_counter()) - self.t0, 3)
        host = environment.host or DEFAULT_HOST
        same_clock = (urllib.parse.urlsplit(host).hostname or "") in LOCAL_HOSTS
        user_rate = float(getattr(opts, "lt_user_rate", 1.0))
        report.meta = {
            "url": host.split("?", 1)[0], "scenario": "echo", "connections": len(self.conns),
            "rate": user_rate * len(self.conns), "durationS": float(getattr(opts, "lt_duration", 0)),
            "payloadBytes": int(getattr(opts, "lt_payload", 128)), "roomSize": None,
            "clock": "same-host" if same_clock else "remote", "runId": self.run_id,
            "warmupS": 0.0, "machine": machine(), "engine": "locust",
        }  # fmt: skip
        rows = []
        for conn in self.conns:
            counts = conn.ledger.counts([(conn.id, conn.sent)])
            rows.append({"id": conn.id, "sent": conn.sent, **counts.as_dict(),
                         "stoppedEarly": not conn.sending_done})  # fmt: skip
            counts.add_to(totals)
        report.connections = rows
        worker = getattr(environment.runner, "client_id", "local")
        payload = worker_payload(str(worker), report, cpu_s)
        environment.runner.send_message(MESSAGE, orjson.dumps(payload).decode())


RECORDER = Recorder()


class Collector:
    """The master's side: the workers' reports, merged and written once all have arrived."""

    def __init__(self) -> None:
        self.payloads: dict[str, dict[str, Any]] = {}
        self.written = False

    def expected(self, environment: Environment) -> int:
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            return max(1, len(runner.clients.all))
        return 1

    def receive(self, environment: Environment, msg: Any, **_: Any) -> None:
        payload = json.loads(msg.data)
        self.payloads[str(payload["worker"])] = payload
        if len(self.payloads) >= self.expected(environment):
            self.write(environment)
            runner = environment.runner
            opts = environment.parsed_options
            if runner is None:
                return
            # Every worker has drained and reported: the run is over. Locust writes its CSV
            # every second (and workers send stats every 3 s), not at exit: with --csv, wait
            # one more round so the CSV holds every request.
            later = 0.0
            if opts is not None and getattr(opts, "csv_prefix", None):
                later = CSV_STATS_INTERVAL_SEC + 0.3
                if isinstance(runner, MasterRunner):
                    later += WORKER_REPORT_INTERVAL
            gevent.spawn_later(later, runner.quit if opts is None or opts.headless else runner.stop)

    def write(self, environment: Environment) -> None:
        if self.written or not self.payloads:
            return
        self.written = True
        report = merge_workers([self.payloads[k] for k in sorted(self.payloads)])
        missing = self.expected(environment) - len(self.payloads)
        if missing > 0:
            report.meta["missingWorkers"] = missing
        opts = environment.parsed_options
        if not getattr(opts, "lt_quiet", False):
            print(format_summary(report), flush=True)
        json_path = str(getattr(opts, "lt_json", "") or "")
        if json_path:
            path = Path(json_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            report.write(path)
            if not getattr(opts, "lt_quiet", False):
                print(f"report: {path}", flush=True)
        plot_path = str(getattr(opts, "lt_plot", "") or "")
        if plot_path:
            from loadtest.plot import write_plot

            write_plot(report, Path(plot_path))


COLLECTOR = Collector()


def _on_init(environment: Environment, **_: Any) -> None:
    if environment.runner is not None and not isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(MESSAGE, COLLECTOR.receive)


def _on_test_start(environment: Environment, **_: Any) -> None:
    RECORDER.reset()
    COLLECTOR.payloads.clear()
    COLLECTOR.written = False


def _on_test_stop(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        RECORDER.send_report(environment)  # stopped before every user finished: what there is


def _on_quitting(environment: Environment, **_: Any) -> None:
    COLLECTOR.write(environment)  # a run stopped early: whatever reports arrived


def _listen(hook: Any, listener: Callable[..., None]) -> None:
    hook.add_listener(listener)  # Locust's event hooks are untyped


_listen(events.init_command_line_parser, _options)
_listen(events.init, _on_init)
_listen(events.test_start, _on_test_start)
_listen(events.test_stop, _on_test_stop)
_listen(events.quitting, _on_quitting)


class EchoUser(User):
    """One connection sending echo frames on an open-loop timeline (docs/contracts.md)."""

    host = DEFAULT_HOST

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.conn: Connection | None = None
        self.receiver: gevent.Greenlet[Any, Any] | None = None
        opts = environment.parsed_options
        self.rate = float(getattr(opts, "lt_user_rate", 1.0))
        self.duration = float(getattr(opts, "lt_duration", 3600.0))
        self.payload = int(getattr(opts, "lt_payload", 128))
        self.drain = float(getattr(opts, "lt_drain", 5.0))
        self.connect_timeout = float(getattr(opts, "lt_connect_timeout", 10.0))
        self.query = str(getattr(opts, "lt_query", "") or "")
        headers = str(getattr(opts, "lt_headers", "") or "")
        self.headers = [f"{k}: {v}" for k, v in json.loads(headers)] if headers else []
        base = self.host or DEFAULT_HOST
        self.url = f"{base}{'&' if '?' in base else '?'}{self.query}" if self.query else base
        self.same_clock = (urllib.parse.urlsplit(base).hostname or "") in LOCAL_HOSTS

    @task
    def run_timeline(self) -> None:
        conn = self.conn = RECORDER.open()
        if self._connect(conn):
            self.receiver = gevent.spawn(self._receive, conn)
            self._send_all(conn)
            conn.sending_done = True
            if conn.ledger.counts([(conn.id, conn.sent)]).lost:
                conn.drained.wait(self.drain)
        RECORDER.connection_done(self.environment, conn)
        raise StopUser()

    def on_stop(self) -> None:
        conn = self.conn
        if conn is None:
            return
        if conn.ws is not None:
            cast(Any, conn.ws).shutdown()  # untyped in websocket-client
        if self.receiver is not None:
            self.receiver.kill(block=False)
        RECORDER.connection_done(self.environment, conn)

    def _connect(self, conn: Connection) -> bool:
        t0 = time.perf_counter()
        try:
            conn.ws = websocket.create_connection(
                self.url, header=self.headers, timeout=self.connect_timeout, enable_multithread=True)
        except Exception as exc:  # every way a $connect fails is a counted, named failure
            reason = f"connect:{type(exc).__name__}"
            status = getattr(exc, "status_code", None)
            if status is not None:
                reason = f"connect:http{status}"
            RECORDER.report.totals["connectFailed"] += 1
            RECORDER.report.errors[reason] += 1
            self._fire("connect", (time.perf_counter() - t0) * 1000, 0, exc)
            return False
        conn.ws.settimeout(None)
        RECORDER.report.totals["connectionsOpened"] += 1
        self._fire("connect", (time.perf_counter() - t0) * 1000, 0, None)
        return True

    def _fire(self, name: str, ms: float, size: int, exc: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=ms, response_length=size,
            exception=exc, context={})  # fmt: skip

    def _send_all(self, conn: Connection) -> None:
        assert conn.ws is not None
        clock = RECORDER.clock
        start_us = clock.now_us()
        timeline = Timeline(self.rate, self.duration, 1)
        for seq, due in timeline.frames_for(0):
            due_us = start_us + due * 1e6
            delay = (due_us - clock.now_us()) / 1e6
            if delay > 0:
                gevent.sleep(delay)
            frame = pad_frame(self._builder(conn.id, seq, int(due_us)), self.payload)
            conn.sent += 1  # before the send: the reply may come back before send() returns
            try:
                conn.ws.send(frame)
            except (websocket.WebSocketException, OSError):
                conn.sent -= 1
                RECORDER.report.errors["unsent:closed"] += timeline.count_for(0) - seq
                return
            RECORDER.report.record_sent((due_us - RECORDER.start_us) / 1e6)
            RECORDER.last_send = time.perf_counter()

    @staticmethod
    def _builder(conn_id: int, seq: int, due_us: int) -> Callable[[str], dict[str, Any]]:
        def build(pad: str) -> dict[str, Any]:
            return {"action": "echo", "data": {"r": RECORDER.run_id, "c": conn_id, "s": seq,
                                               "t": due_us, "a": int(RECORDER.clock.now_us()), "p": pad}}  # fmt: skip

        return build

    def _receive(self, conn: Connection) -> None:
        assert conn.ws is not None
        while True:  # bounded by the socket: it ends when the connection closes
            try:
                message = conn.ws.recv()
            except (websocket.WebSocketException, OSError):
                return
            self._on_message(conn, message, RECORDER.clock.now_us())

    def _on_message(self, conn: Connection, message: str | bytes, now_us: float) -> None:
        report = RECORDER.report
        try:
            obj = orjson.loads(message)
        except orjson.JSONDecodeError:
            obj = None
        action = obj.get("action") if isinstance(obj, dict) else None
        if action == "error":
            report.totals["errorFrames"] += 1
            report.errors[str(obj.get("error"))] += 1
            self._fire("echo", 0, len(message), RuntimeError(str(obj.get("error"))))
            return
        body = obj.get("data") if action == "echo" else None
        if not isinstance(body, dict) or body.get("r") != RECORDER.run_id:
            report.errors["foreign_or_malformed" if action == "echo" else "unrecognised_frame"] += 1
            return
        try:
            sender, seq, due_us, sent_us = int(body["c"]), int(body["s"]), float(body["t"]), float(body["a"])
        except (KeyError, TypeError, ValueError):
            report.errors["foreign_or_malformed"] += 1
            return
        if sender != conn.id:
            report.errors["foreign_or_malformed"] += 1
            return
        if conn.ledger.observe(sender, seq, conn.sent) in (SeqOutcome.DUPLICATE, SeqOutcome.UNEXPECTED):
            return
        latency_us = now_us - due_us
        report.record_latency((due_us - RECORDER.start_us) / 1e6, latency_us, now_us - sent_us)
        timing = obj.get("timing")
        if isinstance(timing, dict):
            report.record_stages(stages.split(timing, sent_us / 1000, now_us / 1000, self.same_clock))
        self._fire("echo", latency_us / 1000, len(message), None)
        if conn.sending_done and conn.ledger.streams[conn.id].received >= conn.sent:
            conn.drained.set()
