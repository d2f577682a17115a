"""The asyncio runner driven from another thread: what each Locust worker runs the load with.

A Locust worker is a gevent process, and gevent's cost per frame (websocket-client's framing in
Python, a greenlet timer a frame, a Locust event a reply) is 2-3x the asyncio runner's. So the
worker drives the load with the asyncio runner itself (:class:`LiveRun`, a :class:`LoadRun`: the
same open-loop timeline, HDR histograms and accounting as ``python -m loadtest``) on its own event
loop in its own native thread (:class:`EngineThread`), and Locust only coordinates:

- each Locust user asks for one connection (:meth:`LiveRun.open_one`): Locust's ramp opens them;
- the end of Locust's spawning starts the timeline over the connections this process opened
  (:meth:`LiveRun.begin`), at ``user_rate`` frames/s per connection;
- Locust's stop ends it early (:meth:`LiveRun.stop`).

Live figures leave the loop as one :class:`Tick` a second (replies per whole millisecond of
latency, new errors), for Locust's statistics; the exact report at the end.

Nothing here imports Locust or gevent: the caller passes how to start a native thread and how to
make the event loop (under gevent's monkeypatching, the unpatched ones).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import io
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loadtest.config import RunConfig
from loadtest.report import Report
from loadtest.runner import LoadRun, Publish
from loadtest.schedule import Timeline

T = TypeVar("T")
TICK_S = 1.0  # how often live figures leave the loop
USER_ERRORS = ("connect:", "late_user")  # errors of a user's connect, which the user reports
STOP_DRAIN_S = 1.0  # a run stopped early waits this long for the replies in flight


@dataclass
class Tick:
    """What the run recorded since the previous tick: per row (``echo``, ``chat``, ``ack``...),
    replies counted by whole milliseconds of latency and their exact sum; new errors by reason
    (those of a connect excluded: each user reports its own connect)."""

    latency_ms: dict[str, dict[int, int]] = field(default_factory=dict)
    sum_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class LiveReport(Report):
    """A :class:`Report` that also counts what it records for the next :class:`Tick`."""

    row: str = "echo"
    pending: Tick = field(default_factory=Tick)
    errors_seen: collections.Counter[str] = field(default_factory=collections.Counter)

    def record_latency(self, due_s: float, latency_us: float, service_us: float | None) -> None:
        super().record_latency(due_s, latency_us, service_us)
        self._count(self.row, latency_us)

    def record_ingest(self, latency_us: float) -> None:
        super().record_ingest(latency_us)
        self._count("ack", latency_us)

    def _count(self, row: str, latency_us: float) -> None:
        ms = max(0.0, latency_us / 1000.0)
        by_ms = self.pending.latency_ms.get(row)
        if by_ms is None:
            by_ms = self.pending.latency_ms[row] = {}
        key = int(ms)
        by_ms[key] = by_ms.get(key, 0) + 1
        self.pending.sum_ms[row] = self.pending.sum_ms.get(row, 0.0) + ms

    def take_tick(self) -> Tick:
        """What was recorded since the last call (called on the run's own loop)."""
        tick = self.pending
        tick.errors = {k: n - self.errors_seen[k] for k, n in self.errors.items()
                       if n > self.errors_seen[k] and not k.startswith(USER_ERRORS)}  # fmt: skip
        self.errors_seen = collections.Counter(self.errors)
        self.pending = Tick()
        return tick


@dataclass(frozen=True)
class Opened:
    """The outcome of :meth:`LiveRun.open_one`: the connect time and, on failure, why."""

    ok: bool
    ms: float
    reason: str = ""


class LiveRun(LoadRun):
    """A :class:`LoadRun` whose connections are opened one by one from outside (one per Locust
    user) and whose timeline starts when told: ``user_rate`` frames/s per connection opened."""

    def __init__(self, cfg: RunConfig, url: str, *, user_rate: float, publish: Publish | None = None) -> None:
        super().__init__(dataclasses.replace(cfg, progress=False, warmup=0.0), url, publish=publish,
                         out=io.StringIO())  # fmt: skip
        self.report: LiveReport = LiveReport(row=cfg.scenario)
        self.user_rate = user_rate
        self.ticks: collections.deque[Tick] = collections.deque()  # read from another thread
        self.opening: set[asyncio.Task[Any]] = set()
        self.senders: set[asyncio.Task[Any]] = set()
        self.begun = False
        self.stopping = False
        self.cpu_s = 0.0
        self.t_begin = self.t_stop = time.perf_counter()

    async def open_one(self) -> Opened:
        """Open one more connection for the run (refused once the timeline has begun)."""
        if self.begun:
            self.report.errors["late_user"] += 1
            return Opened(False, 0.0, "late_user: the run has begun")
        task = asyncio.current_task()
        assert task is not None
        self.opening.add(task)
        before = collections.Counter(self.report.errors)
        t0 = time.perf_counter()
        try:
            ws = await self._open(t0)
        finally:
            self.opening.discard(task)
        ms = (time.perf_counter() - t0) * 1000
        if ws is None:
            new = [k for k, n in self.report.errors.items() if n > before[k]]
            return Opened(False, ms, new[0] if new else "connect")
        self._adopt(ws)
        return Opened(True, ms)

    async def begin(self) -> LiveReport:
        """The run proper over the connections opened so far (those still connecting included):
        chat joins, the open-loop timeline, the drain, the books closed. Returns the report."""
        self.begun = True
        if self.opening:
            await asyncio.wait(self.opening)
        n = len(self.conns)
        self.cfg = dataclasses.replace(self.cfg, connections=n, rate=self.run_rate(n))
        self.report.totals["connectionsOpened"] = n
        ticker = asyncio.create_task(self._tick_loop())
        cpu0, self.t_begin = time.process_time(), time.perf_counter()
        try:
            await self.run()
        finally:
            self.cpu_s = time.process_time() - cpu0
            ticker.cancel()
            self.ticks.append(self.report.take_tick())
        if self.stopping:  # the run's length is what was sent, not the planned duration
            self.report.meta["stoppedEarly"] = True
            self.report.duration_s = round(min(self.cfg.duration, self.t_stop - self.t_begin), 3)
        return self.report

    def run_rate(self, connections: int) -> float:
        """The run's frames/s over ``connections``: ``user_rate`` each."""
        return self.user_rate * max(1, connections)

    def payload_extra(self) -> dict[str, Any]:
        """What this run adds to the report it sends the master (nothing, but broadcast)."""
        return {}

    def stop(self) -> None:
        """End the sending now; replies still in flight get :data:`STOP_DRAIN_S`, then count as
        lost. Call on the run's loop; :meth:`begin` still returns the report."""
        if self.stopping:
            return
        self.stopping = True
        self.t_stop = time.perf_counter()
        for task in list(self.senders):
            task.cancel()
        asyncio.get_running_loop().call_later(STOP_DRAIN_S, self.drained.set)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.ticks.append(self.report.take_tick())

    async def _open_all(self) -> None:
        """Nothing to open: the users opened the connections (:meth:`open_one`)."""

    async def _sender(self, i: int, timeline: Timeline) -> None:
        if self.stopping:
            return
        task = asyncio.current_task()
        assert task is not None
        self.senders.add(task)
        try:
            await super()._sender(i, timeline)
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            task.uncancel()  # stopped on purpose: the run goes on to its drain and report
        finally:
            self.senders.discard(task)


class EngineThread:
    """An asyncio event loop in its own native thread, fed from another thread (Locust's)."""

    def __init__(self, start_thread: Callable[[Callable[[], None]], object],
                 new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop) -> None:  # fmt: skip
        self.loop = new_loop()
        self._start_thread = start_thread
        self.running = False

    def start(self) -> None:
        if not self.running:
            self.running = True
            self._start_thread(self._main)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, make: Callable[[], Coroutine[Any, Any, T]],
               done: Callable[[T | None, BaseException | None], None]) -> None:  # fmt: skip
        """Run ``make()`` on the loop; ``done(result, error)`` is called on the loop's thread."""

        def finished(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                done(None, asyncio.CancelledError())
            elif (exc := task.exception()) is not None:
                done(None, exc)
            else:
                done(task.result(), None)

        def go() -> None:
            self.loop.create_task(make()).add_done_callback(finished)

        self.loop.call_soon_threadsafe(go)

    def call(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` on the loop's thread."""
        self.loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        if self.running:
            self.running = False
            self.loop.call_soon_threadsafe(self.loop.stop)
