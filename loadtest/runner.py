"""The run itself: open connections, send on the open-loop timeline, account every receipt.

One asyncio task per connection receives; one per connection sends on its own slice of the
timeline (so one slow socket never delays the others); the broadcast scenario has one publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import resource
import secrets
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TextIO

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from loadtest import stages
from loadtest.accounting import Ledger, SeqOutcome
from loadtest.acks import AckTracker, Pending, backoff_s
from loadtest.config import RunConfig, system_proxy
from loadtest.machine import machine
from loadtest.progress import progress_loop
from loadtest.report import Report
from loadtest.schedule import Timeline, ramp_delays

Publish = Callable[[dict[str, Any]], Awaitable[None]]
PUBLISHER = "publisher"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
WARMUP_CONNECTIONS = 20  # at most; the warm-up offers the run's full rate over them


class Clock:
    """Epoch microseconds that never go backwards (epoch-aligned ``perf_counter``)."""

    def __init__(self) -> None:
        self.epoch0 = time.time()
        self.mono0 = time.perf_counter()

    def now_us(self) -> float:
        return (self.epoch0 + (time.perf_counter() - self.mono0)) * 1e6

    def mono_of(self, epoch_us: float) -> float:
        return self.mono0 + epoch_us / 1e6 - self.epoch0


def raise_fd_limit() -> int:
    """Raise the open-files soft limit to the hard limit (a few thousand sockets); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def pad_frame(build: Callable[[str], dict[str, Any]], size: int) -> str:
    """The JSON frame built by ``build(pad)`` with ``pad`` sized so the frame is ``size`` bytes
    (or as small as it can be when ``size`` is below the frame's fixed part)."""
    base = orjson.dumps(build(""))
    missing = size - len(base)
    return (orjson.dumps(build("x" * missing)) if missing > 0 else base).decode()


class LoadRun:
    """One run of a scenario against ``url``; :meth:`run` returns the :class:`Report`."""

    def __init__(
        self,
        cfg: RunConfig,
        url: str,
        *,
        publish: Publish | None = None,
        out: TextIO = sys.stdout,
    ) -> None:
        if cfg.scenario == "broadcast" and publish is None:
            raise ValueError("the broadcast scenario needs a publish function")
        self.cfg = cfg
        self.base_url = url
        self.url = cfg.target_url(url)
        self.proxy = system_proxy(self.url)
        self.publish = publish
        self.out = out
        self.same_clock = (urllib.parse.urlsplit(url).hostname or "") in LOCAL_HOSTS
        self.clock = Clock()
        self.run_id = secrets.token_hex(4)
        self.report = Report()
        self.conns: list[ClientConnection] = []
        self.receivers: list[asyncio.Task[None]] = []
        self.sent: list[int] = []
        self.ledgers: list[Ledger] = []
        self.acks: list[AckTracker] = []  # chat: the acked `send` frames in flight
        self.retries: set[asyncio.Task[None]] = set()
        self.room_of: list[int] = []
        self.joined: list[asyncio.Future[None]] = []
        self.published = 0
        self.publish_failed = 0
        self.start_us = 0.0
        self.valid = 0
        self.target: int | None = None
        self.drained = asyncio.Event()
        self.closing = False

    # --- phases ---------------------------------------------------------------------------
    async def run(self) -> Report:
        cfg = self.cfg
        raise_fd_limit()
        warmed = await self._warm_up() if cfg.warmup > 0 else None
        self.report.meta = {
            "url": self.url.split("?", 1)[0], "scenario": cfg.scenario,
            "connections": cfg.connections, "rate": cfg.rate, "durationS": cfg.duration,
            "payloadBytes": cfg.payload, "roomSize": cfg.room_size if cfg.scenario == "chat" else None,
            "clock": "same-host" if self.same_clock else "remote", "runId": self.run_id,
            "warmupS": cfg.warmup, "machine": machine(),
        }  # fmt: skip
        if warmed is not None:
            self.report.meta["warmup"] = {
                "connections": warmed.totals["connectionsOpened"], "sent": warmed.totals["sent"],
                "received": warmed.totals["received"],
            }  # fmt: skip
        self.report.started_at = time.time()
        await self._open_all()
        if self.conns and cfg.scenario == "chat":
            await self._join_all()
        senders = 1 if cfg.scenario == "broadcast" else max(1, len(self.conns))
        timeline = Timeline(cfg.rate, cfg.duration, senders)
        self.start_us = self.clock.now_us()
        stop = asyncio.Event()
        show = cfg.progress if cfg.progress is not None else self.out.isatty()
        ticker = asyncio.create_task(progress_loop(self.report, stop, self.out)) if show else None
        t0, cpu0 = time.perf_counter(), time.process_time()
        if self.conns:
            if cfg.scenario == "broadcast":
                await self._publisher(timeline)
            else:
                await asyncio.gather(*(self._sender(i, timeline) for i in range(len(self.conns))))
        self.report.duration_s = round(max(time.perf_counter() - t0, cfg.duration), 3)
        await self._drain()
        stop.set()
        if ticker is not None:
            await ticker
        # the generator's own cost: this process's CPU over sending and draining, per frame sent
        cpu_s = time.process_time() - cpu0
        sent = self.report.totals["sent"]
        self.report.meta["generatorCpuPerFrameUs"] = round(cpu_s * 1e6 / sent, 1) if sent else 0.0
        await self._close_all()
        self._finish()
        return self.report

    async def _warm_up(self) -> Report:
        """``--warmup`` seconds of the same scenario at the same rate on separate connections
        (and rooms), drained and discarded: the twin's workers, pools and caches are warm, so
        the measured run does not report cold starts. Nothing of it is recorded in the report."""
        cfg = self.cfg
        connections = min(cfg.connections, WARMUP_CONNECTIONS)
        if cfg.scenario == "chat":
            connections = max(connections, cfg.room_size)
        warm_cfg = dataclasses.replace(
            cfg, duration=cfg.warmup, warmup=0.0, connections=connections, json_path=None,
            plot_path=None, progress=False)
        print(f"warm-up: {cfg.warmup:g} s on {connections} connections, not recorded",
              file=self.out, flush=True)
        return await LoadRun(warm_cfg, self.base_url, publish=self.publish, out=self.out).run()

    async def _open_all(self) -> None:
        delays = ramp_delays(self.cfg.connections, self.cfg.ramp)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(self._open(t0 + d) for d in delays))
        for ws in results:
            if ws is not None:
                self._adopt(ws)
        self.report.totals["connectionsOpened"] = len(self.conns)

    def _adopt(self, ws: ClientConnection) -> int:
        """Make an open connection the run's next one (its receiver starts); returns its index."""
        i = len(self.conns)
        self.conns.append(ws)
        self.sent.append(0)
        self.ledgers.append(Ledger())
        self.acks.append(AckTracker())
        self.joined.append(asyncio.get_running_loop().create_future())
        self.receivers.append(asyncio.create_task(self._receive(i, ws)))
        return i

    async def _open(self, at: float) -> ClientConnection | None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        try:
            return await connect(
                self.url,
                additional_headers=list(self.cfg.headers),
                open_timeout=self.cfg.connect_timeout,
                ping_interval=None,
                compression=None,
                close_timeout=5,
                max_size=2**20,
                proxy=self.proxy,
            )
        except InvalidStatus as exc:
            reason = f"connect:http{exc.response.status_code}"
        except TimeoutError:
            reason = "connect:timeout"
        except (OSError, WebSocketException) as exc:
            reason = f"connect:{type(exc).__name__}"
        self.report.totals["connectFailed"] += 1
        self.report.errors[reason] += 1
        return None

    async def _join_all(self) -> None:
        size = self.cfg.room_size
        self.room_of = [i // size for i in range(len(self.conns))]

        async def join(i: int) -> None:
            frame = orjson.dumps({"action": "join", "room": self._room(i)}).decode()
            try:
                await self.conns[i].send(frame)
                await asyncio.wait_for(asyncio.shield(self.joined[i]), self.cfg.connect_timeout)
            except (TimeoutError, ConnectionClosed):
                self.report.errors["join_failed"] += 1

        await asyncio.gather(*(join(i) for i in range(len(self.conns))))

    def _room(self, i: int) -> str:
        return f"lt-{self.run_id}-{self.room_of[i]}"

    async def _wait_until(self, due_s: float) -> None:
        delay = self.clock.mono_of(self.start_us) + due_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    def _body(self, sender: int, seq: int, due_us: float, pad: str) -> dict[str, Any]:
        return {"r": self.run_id, "c": sender, "s": seq, "t": int(due_us),
                "a": int(self.clock.now_us()), "p": pad}  # fmt: skip

    def _frame(self, i: int, seq: int, due_us: float) -> str:
        """Connection ``i``'s frame ``seq``, padded to ``--payload`` bytes."""
        if self.cfg.scenario == "chat":
            room = self._room(i)

            def build(pad: str) -> dict[str, Any]:
                text = orjson.dumps(self._body(i, seq, due_us, pad)).decode()
                return {"action": "send", "room": room, "text": text}
        else:

            def build(pad: str) -> dict[str, Any]:
                return {"action": "echo", "data": self._body(i, seq, due_us, pad)}

        return pad_frame(build, self.cfg.payload)

    async def _sender(self, i: int, timeline: Timeline) -> None:
        ws = self.conns[i]
        for seq, due in timeline.frames_for(i):
            await self._wait_until(due)
            frame = self._frame(i, seq, self.start_us + due * 1e6)
            self.sent[i] += 1  # before the send: a reply may arrive before send() returns
            try:
                await ws.send(frame)
            except ConnectionClosed:
                self.sent[i] -= 1  # the last number: no gap in the connection's sequence
                self.report.errors["unsent:closed"] += timeline.count_for(i) - seq
                return
            if self.cfg.scenario == "chat":
                self.acks[i].sent(frame, self.clock.now_us())
            self.report.record_sent(due)

    async def _publisher(self, timeline: Timeline) -> None:
        assert self.publish is not None
        for seq, due in timeline.frames_for(0):
            await self._wait_until(due)
            due_us = self.start_us + due * 1e6
            body = self._body(-1, seq, due_us, "x" * max(0, self.cfg.payload - 80))
            self.published += 1
            try:
                await self.publish(body)
            except Exception as exc:  # a failed publish is a documented error, not a crash
                # its number stays used (later ones keep theirs); _finish discounts it
                self.publish_failed += 1
                self.report.errors[f"publish:{type(exc).__name__}"] += 1
                continue
            self.report.record_sent(due)

    def _expected_from(self, i: int) -> list[tuple[Hashable, int]]:
        if self.cfg.scenario == "echo":
            return [(i, self.sent[i])]
        if self.cfg.scenario == "broadcast":
            return [(PUBLISHER, self.published)]
        room = self.room_of[i]
        return [(j, self.sent[j]) for j in range(len(self.conns)) if j != i and self.room_of[j] == room]

    async def _drain(self) -> None:
        expected = sum(sum(n for _, n in self._expected_from(i)) for i in range(len(self.conns)))
        self.target = expected - self.publish_failed * len(self.conns)
        if self.valid >= self.target:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained.wait(), self.cfg.drain)

    async def _close_all(self) -> None:
        self.closing = True
        for task in list(self.retries):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in self.conns)), 10)
        _, pending = await asyncio.wait(self.receivers, timeout=5) if self.receivers else ((), ())
        for task in pending:
            task.cancel()

    def _finish(self) -> None:
        rows = []
        totals = self.report.totals
        for i, ledger in enumerate(self.ledgers):
            counts = ledger.counts(self._expected_from(i))
            if self.publish_failed:  # publishes that failed were never expected to arrive
                counts = dataclasses.replace(
                    counts, expected=counts.expected - self.publish_failed,
                    lost=max(0, counts.lost - self.publish_failed))  # fmt: skip
            code = self.conns[i].close_code
            self.report.close_codes[str(code)] += 1
            rows.append({"id": i, "sent": self.sent[i], **counts.as_dict(), "closeCode": code})
            counts.add_to(totals)
            if self.cfg.scenario == "chat":
                totals["ackMissing"] += self.acks[i].missing
        self.report.connections = rows

    # --- receiving ------------------------------------------------------------------------
    async def _receive(self, i: int, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._on_message(i, message, self.clock.now_us())
        except ConnectionClosed:
            pass
        finally:
            if not self.closing:
                self.report.errors[f"closed_early:{ws.close_code}"] += 1

    def _on_message(self, i: int, message: str | bytes, now_us: float) -> None:
        try:
            obj = orjson.loads(message)
            action = obj.get("action") if isinstance(obj, dict) else None
        except orjson.JSONDecodeError:
            obj, action = None, None
        if action == "echo":
            self._on_body(i, obj.get("data"), now_us, obj.get("timing"))
        elif action == "message":
            try:
                body = orjson.loads(obj.get("text") or b"")
            except (orjson.JSONDecodeError, TypeError):
                body = None
            self._on_body(i, body, now_us, None)
        elif action == "broadcast":
            self._on_body(i, obj.get("data"), now_us, None)
        elif action in ("ack", "nack"):
            self._on_answer(i, obj, now_us)
        elif action == "joined":
            if self.joined and not self.joined[i].done():
                self.joined[i].set_result(None)
        elif action == "error":
            self.report.totals["errorFrames"] += 1
            self.report.errors[str(obj.get("error"))] += 1
        elif action == "presence":  # chat tells members who joins and leaves: not an error
            self.report.totals["presenceFrames"] += 1
        else:
            self.report.errors["unrecognised_frame"] += 1

    def _on_answer(self, i: int, obj: dict[str, Any], now_us: float) -> None:
        """An ack/nack of connection i's oldest acked frame (loadtest/acks.py)."""
        answer = self.acks[i].answer(obj, now_us)
        totals = self.report.totals
        if answer.pending is None:
            self.report.errors["unmatched_ack"] += 1
        elif answer.ingest_us is not None:
            totals["acks"] += 1
            self.report.record_ingest(answer.ingest_us)
        else:
            totals["nacks"] += 1
            self.report.errors[f"nack:{answer.error}"] += 1
            if answer.retry:
                totals["retries"] += 1
                task = asyncio.create_task(self._resend(i, answer.pending))
                self.retries.add(task)
                task.add_done_callback(self.retries.discard)
            else:
                totals["ackGaveUp"] += 1

    async def _resend(self, i: int, nacked: Pending) -> None:
        await asyncio.sleep(backoff_s(nacked.attempt))
        if self.closing:
            return
        self.acks[i].sent(nacked.frame, nacked.sent_us, nacked.attempt + 1)
        try:
            await self.conns[i].send(nacked.frame)
        except ConnectionClosed:
            self.report.errors["unsent:closed"] += 1

    def _on_body(self, i: int, body: Any, now_us: float, timing: Any) -> None:
        if not isinstance(body, dict) or body.get("r") != self.run_id:
            self.report.errors["foreign_or_malformed"] += 1
            return
        try:
            sender, seq = int(body["c"]), int(body["s"])
            due_us, sent_us = float(body["t"]), float(body["a"])
        except (KeyError, TypeError, ValueError):
            self.report.errors["foreign_or_malformed"] += 1
            return
        key: Hashable = PUBLISHER if self.cfg.scenario == "broadcast" else sender
        if self.cfg.scenario == "broadcast":
            known = self.published
        else:
            known = self.sent[sender] if 0 <= sender < len(self.sent) else 0
        outcome = self.ledgers[i].observe(key, seq, known)
        if outcome in (SeqOutcome.DUPLICATE, SeqOutcome.UNEXPECTED):
            return
        self.report.record_latency(
            (due_us - self.start_us) / 1e6, now_us - due_us, now_us - sent_us
        )
        if isinstance(timing, dict):
            split = stages.split(timing, sent_us / 1000, now_us / 1000, self.same_clock)
            self.report.record_stages(split)
        self.valid += 1
        if self.target is not None and self.valid >= self.target:
            self.drained.set()
