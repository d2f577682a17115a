"""The asyncio runner driven from another thread (loadtest/live.py), without Locust: what each
Locust worker runs, fed here from the test's thread as Locust's greenlets feed it there."""

from __future__ import annotations

import _thread
import asyncio
import queue
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from loadtest.bench import ServerProcess
from loadtest.config import RunConfig
from loadtest.live import EngineThread, LiveReport, LiveRun, Opened, Tick

WAIT_S = 60.0  # a deadline, not a timing: every wait below ends on its condition


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with ServerProcess() as url:
        yield url


@pytest.fixture
def engine() -> Iterator[EngineThread]:
    thread = EngineThread(lambda fn: _thread.start_new_thread(fn, ()))
    thread.start()
    yield thread
    thread.close()


def call(engine: EngineThread, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on the engine's loop from this thread; its result (or its error)."""
    out: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue()
    engine.submit(make, lambda value, exc: out.put((value, exc)))
    value, exc = out.get(timeout=WAIT_S)
    if exc is not None:
        raise exc
    return value


def ticks_total(ticks: list[Tick], row: str) -> int:
    return sum(sum(t.latency_ms.get(row, {}).values()) for t in ticks)


def test_a_tick_holds_what_was_recorded_since_the_last_one() -> None:
    report = LiveReport(row="chat")
    for latency_us in (400, 1_500, 1_900, 250_000):
        report.record_latency(0.5, latency_us, None)
    report.record_ingest(3_200)
    report.errors["payload_too_large"] += 2
    report.errors["connect:http403"] += 1  # a user reports its own connect
    report.errors["late_user"] += 1
    tick = report.take_tick()
    assert tick.latency_ms == {"chat": {0: 1, 1: 2, 250: 1}, "ack": {3: 1}}
    assert tick.sum_ms["chat"] == pytest.approx(253.8)
    assert tick.errors == {"payload_too_large": 2}
    report.errors["payload_too_large"] += 1
    report.record_latency(1.5, 2_000, None)
    tick = report.take_tick()
    assert tick.latency_ms == {"chat": {2: 1}} and tick.errors == {"payload_too_large": 1}
    assert report.histograms["latency"].get_total_count() == 5  # the report keeps everything


def test_connections_opened_one_by_one_then_the_timeline_over_all_of_them(
    echo_url: str, engine: EngineThread
) -> None:
    cfg = RunConfig(url=echo_url, duration=1.0, drain=5.0, payload=200)
    run = LiveRun(cfg, echo_url, user_rate=20.0)
    opened = [call(engine, run.open_one) for _ in range(4)]
    assert all(isinstance(o, Opened) and o.ok and o.ms > 0 for o in opened)
    report = call(engine, run.begin)
    totals = report.totals
    assert totals["connectionsOpened"] == 4
    assert totals["sent"] == totals["expected"] == totals["received"] == 80  # 4 x 20/s x 1 s
    assert totals["lost"] == totals["errorFrames"] == 0
    assert report.meta["rate"] == 80.0 and report.meta["connections"] == 4
    assert [row["sent"] for row in report.connections] == [20, 20, 20, 20]
    assert ticks_total(list(run.ticks), "echo") == 80  # every reply reached the live figures
    assert run.cpu_s > 0
    late = call(engine, run.open_one)
    assert not late.ok and "late_user" in late.reason


def test_a_run_stopped_early_accounts_every_frame_it_sent(echo_url: str, engine: EngineThread) -> None:
    cfg = RunConfig(url=echo_url, duration=600.0, drain=5.0)
    run = LiveRun(cfg, echo_url, user_rate=50.0)
    for _ in range(2):
        assert call(engine, run.open_one).ok
    stopped: queue.Queue[LiveReport] = queue.Queue()
    engine.submit(run.begin, lambda value, exc: stopped.put(value))

    async def stop_after_some_replies() -> None:
        async with asyncio.timeout(WAIT_S):
            while run.valid < 20:  # replies counted so far, read on the run's loop: no race
                await asyncio.sleep(0.01)
        run.stop()

    call(engine, stop_after_some_replies)
    report = stopped.get(timeout=WAIT_S)
    totals = report.totals
    assert report.meta["stoppedEarly"] is True
    assert 20 <= totals["sent"] < 60_000  # far fewer than 600 s would have sent
    assert totals["received"] + totals["lost"] == totals["sent"] == totals["expected"]
    assert report.duration_s < cfg.duration
