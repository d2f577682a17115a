"""The load test's scenarios on Locust: ``locust -f loadtest/locustfile.py --host ws://...``.

Importing this module imports Locust, which monkeypatches the standard library for gevent: only
Locust's own processes import it (``python -m loadtest --workers N`` starts them as
subprocesses; loadtest/distributed.py holds everything the rest of the package shares with it).

One Locust user is one WebSocket connection, but no greenlet drives it: the load runs on the
asyncio runner of ``python -m loadtest`` (loadtest/live.py), on its own event loop in its own
native thread of each Locust process, with its exact HDR histograms and per-connection
accounting. Locust coordinates: each user asks that loop for one connection (Locust's ramp opens
them), the end of Locust's spawning starts every process's open-loop timeline (``--lt-user-rate``
frames/s per connection for ``--lt-duration`` s, latency from each frame's intended send time),
and Locust's stop stops it early. Once a second the loop's figures go into Locust's statistics
(one row per scenario, so the UI and the CSV show them live); when the run has drained, each
process sends its report to the master (a custom message), which merges them exactly into the
JSON report of ``python -m loadtest``. Broadcast: the master is the one publisher, and two more
custom messages tie it to every worker's members (loadtest/live_broadcast.py says why).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import gevent
import orjson
from gevent import monkey
from gevent.event import AsyncResult, Event
from locust import User, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import LocalRunner, MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC, RequestStats, StatsEntry, bucket_response_time

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # plain `locust -f loadtest/...`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.config import LOCUST_SCENARIOS, RunConfig
from loadtest.distributed import MESSAGE, worker_payload
from loadtest.live import TICK_S, EngineThread, LiveRun, Opened, Tick
from loadtest.live_broadcast import PUBLISHED, READY, LiveBroadcast
from loadtest.locust_master import COLLECTOR, PUBLISHER, send
from loadtest.machine import machine
from pipeline.names import twin_ws_url

DEFAULT_HOST = twin_ws_url()
DEFAULT_REPORT = "loadtest-results/locust.json"
STOP_WAIT_S = 10.0  # how long a stopped process waits for its run to close the books
log = logging.getLogger(__name__)


def _options(parser: Any) -> None:
    group = parser  # Locust's own parser: its groups do not know Locust's is_secret
    group.add_argument("--lt-scenario", choices=LOCUST_SCENARIOS, default="echo", help="scenario")
    group.add_argument("--lt-user-rate", type=float, default=1.0,
                       help="frames/s each user (connection) sends, open loop")
    group.add_argument("--lt-duration", type=float, default=3600.0,
                       help="seconds of sending, from the end of the ramp (then a drain and the report)")
    group.add_argument("--lt-payload", type=int, default=128, help="frame size in bytes")
    group.add_argument("--lt-room-size", type=int, default=5,
                       help="chat: members per room (rooms are formed within each worker); "
                            "broadcast: one room of every user")
    group.add_argument("--lt-rate", type=float, default=1.0,
                       help="broadcast: messages/s the master publishes to the room")
    group.add_argument("--lt-aws-endpoint", default="",
                       help="broadcast: the AWS endpoint to publish through (the twin's: "
                            "http://127.0.0.1:4566; default: boto3's)")
    group.add_argument("--lt-run-id", default="", help="set by the master: the run's id and room")
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


def run_config(environment: Environment) -> tuple[RunConfig, float]:
    """This process's run from the ``--lt-*`` options, and the frames/s of one connection."""
    opts = environment.parsed_options
    headers = str(getattr(opts, "lt_headers", "") or "")
    config = RunConfig(
        scenario=str(getattr(opts, "lt_scenario", "echo")),
        url=environment.host or DEFAULT_HOST,
        duration=float(getattr(opts, "lt_duration", 3600.0)),
        payload=int(getattr(opts, "lt_payload", 128)),
        room_size=int(getattr(opts, "lt_room_size", 5)),
        drain=float(getattr(opts, "lt_drain", 5.0)),
        connect_timeout=float(getattr(opts, "lt_connect_timeout", 10.0)),
        headers=tuple((str(k), str(v)) for k, v in json.loads(headers)) if headers else (),
        query=tuple(urllib.parse.parse_qsl(str(getattr(opts, "lt_query", "") or ""))),
    )
    return config, float(getattr(opts, "lt_user_rate", 1.0))


def _start_native_thread(fn: Callable[[], None]) -> object:
    # gevent's patched threading would make a greenlet; the runner needs a thread of its own
    start: Callable[[Callable[[], None], tuple[()]], object] = monkey.get_original("_thread", "start_new_thread")
    return start(fn, ())


def _native_loop() -> asyncio.AbstractEventLoop:
    # the unpatched selector: the loop blocks its own thread in epoll, not in gevent's hub
    selector = monkey.get_original("selectors", "DefaultSelector")
    return asyncio.SelectorEventLoop(selector())


def add_tick(stats: RequestStats, tick: Tick, row: str, now: float) -> None:
    """One second of the run into Locust's statistics, merged the way Locust's master merges a
    worker's (``StatsEntry.extend``); new errors are Locust failures of the scenario's row."""
    for name, by_ms in tick.latency_ms.items():
        count = sum(by_ms.values())
        times: defaultdict[int, int] = defaultdict(int)
        for ms, n in by_ms.items():
            times[bucket_response_time(ms)] += n
        data: dict[str, Any] = {  # StatsEntryDict, with the exact (float) sum of milliseconds
            "name": name, "method": "WS", "last_request_timestamp": now, "start_time": now,
            "num_requests": count, "num_none_requests": 0, "num_failures": 0,
            "total_response_time": tick.sum_ms[name], "max_response_time": max(by_ms),
            "min_response_time": min(by_ms), "total_content_length": 0,
            "response_times": times, "num_reqs_per_sec": {int(now): count}, "num_fail_per_sec": {},
        }  # fmt: skip
        entry = StatsEntry.unserialize(cast(Any, data), stats)
        stats.get(name, "WS").extend(entry)
        stats.total.extend(entry)
    for reason, n in tick.errors.items():
        for _ in range(n):
            stats.log_error("WS", row, reason)


class Live:
    """This process's share of the run (a worker's, or plain Locust's): a :class:`LiveRun` on
    the engine thread, the users' connects, the start, the stop and the report."""

    def __init__(self) -> None:
        self.engine: EngineThread | None = None
        self.hub: Any = None
        self.run: LiveRun | None = None
        self.finished = Event()
        self.all_requested = Event()
        self.requested, self.wanted = 0, sys.maxsize  # connections asked for, users spawned
        self.begun = False
        self.reported = False
        self.ticker: gevent.Greenlet[Any, Any] | None = None

    def new_run(self, environment: Environment) -> None:
        if self.engine is None:
            self.hub = gevent.get_hub()
            machine()  # platform's caches filled here: the engine thread must not fork under gevent
            self.engine = EngineThread(_start_native_thread, _native_loop)
            self.engine.start()
        cfg, user_rate = run_config(environment)
        opts = environment.parsed_options
        if cfg.scenario == "broadcast" and opts is not None:
            self.run = LiveBroadcast(cfg, cfg.url or DEFAULT_HOST, run_id=str(opts.lt_run_id),
                                     rate=float(opts.lt_rate), say_ready=self._ready_sayer(environment))  # fmt: skip
        else:
            self.run = LiveRun(cfg, cfg.url or DEFAULT_HOST, user_rate=user_rate)
        self.finished = Event()
        self.all_requested = Event()
        self.begun = self.reported = False
        self.requested, self.wanted = 0, sys.maxsize
        if self.ticker is not None:
            self.ticker.kill(block=False)
        self.ticker = gevent.spawn(self._tick_forever, environment, self.run)

    def _ready_sayer(self, environment: Environment) -> Callable[[dict[str, Any]], None]:
        """Broadcast: tell the master this process's members have joined (from the engine)."""
        hub = self.hub

        def say(data: dict[str, Any]) -> None:
            worker = str(getattr(environment.runner, "client_id", "local"))
            message = {**data, "worker": worker}
            hub.loop.run_callback_threadsafe(gevent.spawn, send, environment, READY, message)

        return say

    def told(self, environment: Environment, msg: Any, **_: Any) -> None:
        """Broadcast: the master's count of what it published, for this process's members."""
        run = self.run
        if isinstance(run, LiveBroadcast) and self.engine is not None:
            data = dict(msg.data)
            self.engine.call(lambda: run.on_published(data))

    def _call(self, make: Callable[[], Any]) -> AsyncResult:
        """Run a coroutine on the engine; an AsyncResult of ``(value, error)`` here."""
        assert self.engine is not None
        result = AsyncResult()
        hub = self.hub
        self.engine.submit(make, lambda value, exc: hub.loop.run_callback_threadsafe(result.set, (value, exc)))
        return result

    def open(self) -> Opened:
        """One more connection (this greenlet waits for its connect)."""
        if self.run is None:
            return Opened(False, 0.0, "no run")
        result = self._call(self.run.open_one)
        self.requested += 1
        if self.requested >= self.wanted:
            self.all_requested.set()
        value, exc = result.get()
        if exc is not None:
            return Opened(False, 0.0, f"{type(exc).__name__}: {exc}")
        assert isinstance(value, Opened)
        return value

    def begin(self, environment: Environment) -> None:
        """Start the run's timeline (once), when every user spawned so far has asked for its
        connection (Locust says spawning is complete before the users' greenlets first run);
        the report goes to the master when the run has drained."""
        if self.run is None or self.begun:
            return
        self.begun = True
        # the users this process is to have (spawned or not: under load the master may say
        # spawning is complete before a worker has spawned them all)
        users = environment.runner.target_user_count if environment.runner is not None else 0
        gevent.spawn(self._begin_when_requested, environment, self.run, users)

    def _begin_when_requested(self, environment: Environment, run: LiveRun, users: int) -> None:
        self.wanted = users
        if self.requested < users and not self.all_requested.wait(STOP_WAIT_S):
            log.warning("%d of %d users asked for a connection: starting with those", self.requested, users)
        self._report_when_done(environment, run, self._call(run.begin))

    def stop(self, environment: Environment) -> None:
        """Locust stopped: end the sending, then wait (bounded) for the report to be sent."""
        run = self.run
        if run is None or self.reported or self.engine is None:
            return
        self.engine.call(run.stop)
        self.all_requested.set()  # no more users will ask
        self.begin(environment)  # stopped before its start: it still reports its connections
        if not self.finished.wait(STOP_WAIT_S):
            log.warning("the run did not close its books within %.0f s: no report from here", STOP_WAIT_S)

    def _report_when_done(self, environment: Environment, run: LiveRun, done: AsyncResult) -> None:
        _, exc = done.get()
        if exc is not None:
            log.error("the load run failed: %r", exc)
        self._apply_ticks(environment, run)
        if self.ticker is not None:
            self.ticker.kill(block=False)
        self.reported = True
        worker = getattr(environment.runner, "client_id", "local")
        payload = worker_payload(str(worker), run.report, run.cpu_s, run.payload_extra())
        if environment.runner is not None:
            environment.runner.send_message(MESSAGE, orjson.dumps(payload).decode())
        self.finished.set()

    def _tick_forever(self, environment: Environment, run: LiveRun) -> None:
        while True:  # killed when the run has reported (or a new run starts)
            gevent.sleep(TICK_S)
            self._apply_ticks(environment, run)

    def _apply_ticks(self, environment: Environment, run: LiveRun) -> None:
        now = time.time()
        while run.ticks:
            add_tick(environment.stats, run.ticks.popleft(), run.cfg.scenario, now)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


LIVE = Live()


ENVIRONMENT: list[Environment] = []  # Locust's, from its init event (spawning_complete has none)


def _on_init(environment: Environment, **_: Any) -> None:
    ENVIRONMENT.append(environment)
    runner = environment.runner
    if runner is not None and not isinstance(runner, WorkerRunner):
        runner.register_message(MESSAGE, COLLECTOR.receive)
        runner.register_message(READY, PUBLISHER.ready)
    if runner is not None and not isinstance(runner, MasterRunner):
        runner.register_message(PUBLISHED, LIVE.told)


def _on_test_start(environment: Environment, **_: Any) -> None:
    COLLECTOR.payloads.clear()
    COLLECTOR.written = False
    if not isinstance(environment.runner, WorkerRunner):
        PUBLISHER.new_run(environment, run_config(environment)[0])
    if not isinstance(environment.runner, MasterRunner):
        LIVE.new_run(environment)


def _on_test_stopping(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        PUBLISHER.tell(environment)  # stopped while publishing: the count so far


def _on_spawning_complete(**_: Any) -> None:
    # every user is spawned (on a worker: the master says so): the timeline starts
    for environment in ENVIRONMENT[-1:]:
        if not isinstance(environment.runner, MasterRunner):
            LIVE.begin(environment)


def _on_test_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner) or LIVE.reported:
        return
    LIVE.stop(environment)  # stopped before the run drained: what there is
    opts = environment.parsed_options
    if isinstance(environment.runner, LocalRunner) and getattr(opts, "csv_prefix", None):
        # Locust rewrites its CSV once a second and not at exit: one more round, so the CSV
        # holds the last second's figures too
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.3)


def _on_quitting(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        LIVE.stop(environment)  # Ctrl-C or SIGTERM: the report first, then the engine goes
    COLLECTOR.write(environment)  # a run stopped early: whatever reports arrived
    LIVE.close()


def _listen(hook: Any, listener: Callable[..., None]) -> None:
    hook.add_listener(listener)  # Locust's event hooks are untyped


_listen(events.init_command_line_parser, _options)
_listen(events.init, _on_init)
_listen(events.test_start, _on_test_start)
_listen(events.spawning_complete, _on_spawning_complete)
_listen(events.test_stopping, _on_test_stopping)
_listen(events.test_stop, _on_test_stop)
_listen(events.quitting, _on_quitting)


class ConnectionUser(User):
    """One WebSocket connection of the run's scenario (``--lt-scenario``), driven by the engine
    thread; this greenlet only opens it (Locust's ramp) and waits for the run to end."""

    host = DEFAULT_HOST

    @task
    def connection(self) -> None:
        opened = LIVE.open()
        self.environment.events.request.fire(
            request_type="WS", name="connect", response_time=opened.ms, response_length=0,
            exception=None if opened.ok else ConnectionError(opened.reason), context={})  # fmt: skip
        if opened.ok:
            LIVE.finished.wait()
        raise StopUser()
