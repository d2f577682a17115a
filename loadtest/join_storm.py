"""The join-storm scenario: N connections join one room, then one broadcast to it.

``python -m loadtest --scenario join-storm --room-size N [--ramp R] [--json F]``

Connections open on the ramp schedule (``--ramp``, by default API Gateway's new-connection
quota, 500/s) and each sends ``join`` as soon as it is open. Measured:

- **join -> joined**: from a join frame's send to its ``joined`` answer (histogram ``join``).
  A join is answered from the roster write, so this must not grow with the room's size;
- **presence frames per member** for the room (min / mean / max), against the bound of one frame
  per presence window (``presenceWindowMs`` of ``consumers/presence``) over the time the member
  was listening; rooms above ``presenceMaxMembers`` stop getting them once full;
- **the broadcast** published once every member has its ``joined`` (or the wait for them ran
  out): members that got it exactly once, duplicates, lost, and the time from the publish to each
  member's receipt (histogram ``latency``; its max is the time to the last member).

After the last delivery the run listens ``SETTLE`` more (one presence window and a second), so
late duplicates and the last window's presence frames are counted, then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from loadtest import histo
from loadtest.acks import backoff_s
from loadtest.config import RunConfig, system_proxy
from loadtest.machine import machine
from loadtest.report import Report
from loadtest.runner import Clock, Publish, raise_fd_limit
from loadtest.schedule import ramp_delays

CONNECT_ATTEMPTS = 5  # a connect refused by the quota (429) is retried, bounded
MIN_WAIT_S = 60.0  # at least this long for the joins' answers and for the broadcast
DEFAULT_WINDOW_MS = 1000


@dataclass
class Member:
    """One connection of the room and what it saw."""

    ws: ClientConnection
    join_sent_us: float = 0.0
    joined_us: float | None = None
    presence: int = 0
    broadcasts: list[float] = field(default_factory=list)  # receipt times (epoch us)


def presence_settings() -> tuple[int, int]:
    """``(presenceWindowMs, presenceMaxMembers)`` of the checkout's presence consumer."""
    from pipeline.registry import load_all

    for spec in load_all():
        if spec.presence_window_ms:
            return spec.presence_window_ms, spec.presence_max_members
    return DEFAULT_WINDOW_MS, 0


class JoinStorm:
    """One join storm against ``url``; :meth:`run` returns the :class:`Report`."""

    def __init__(self, cfg: RunConfig, url: str, publish: Callable[[str], Publish], *,
                 out: TextIO = sys.stdout) -> None:
        self.cfg = cfg
        self.url = cfg.target_url(url)
        self.proxy = system_proxy(self.url)
        self.base_url = url
        self.run_id = secrets.token_hex(4)
        self.room = f"js-{self.run_id}"
        self.publish = publish(self.room)
        self.out = out
        self.clock = Clock()
        self.window_ms, self.max_members = presence_settings()
        self.members: list[Member] = []
        self.receivers: list[asyncio.Task[None]] = []
        self.report = Report()
        self.joined = 0
        self.delivered = 0
        self.changed = asyncio.Event()
        self.closing = False

    async def run(self) -> Report:
        cfg, t = self.cfg, self.report.totals
        raise_fd_limit()
        self.report.meta = {
            "url": self.base_url.split("?", 1)[0], "scenario": "join-storm",
            "connections": cfg.room_size, "rate": cfg.ramp, "durationS": cfg.room_size / cfg.ramp,
            "roomSize": cfg.room_size, "clock": "same-host", "runId": self.run_id,
            "machine": machine(),
        }  # fmt: skip
        self.report.started_at = time.time()
        print(f"join-storm: {cfg.room_size} connections join one room at {cfg.ramp:g}/s, "
              f"then one broadcast ({self.base_url.split('?', 1)[0]})", file=self.out, flush=True)
        t0 = time.perf_counter()
        await asyncio.gather(*(self._member(t0 + d) for d in ramp_delays(cfg.room_size, cfg.ramp)))
        t["connectionsOpened"] = len(self.members)
        wait_s = max(MIN_WAIT_S, cfg.drain)
        await self._until(lambda: self.joined >= len(self.members), wait_s)
        publish_us = self.clock.now_us()
        try:
            await self.publish({"r": self.run_id, "n": 0})
            t["sent"] = 1
        except Exception as exc:  # a failed publish is reported, not a crash
            self.report.errors[f"publish:{type(exc).__name__}"] += 1
        if t["sent"]:
            await self._until(lambda: self.delivered >= len(self.members), wait_s)
        # listen one presence window more (and a second for the fan-out hop): late duplicates
        # and the last window's presence frames are counted; a fixed, bounded measuring window
        await asyncio.sleep(self.window_ms / 1000 + 1.0)
        end_us = self.clock.now_us()
        await self._close_all()
        self._finish(publish_us, end_us)
        return self.report

    async def _until(self, done: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``done()`` (re-checked on every counted frame) or ``timeout_s``."""
        deadline = time.perf_counter() + timeout_s
        while not done():
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def _member(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))  # the ramp's schedule
        ws = await self._connect()
        if ws is None:
            return
        member = Member(ws)
        self.members.append(member)
        self.receivers.append(asyncio.create_task(self._receive(member)))
        frame = orjson.dumps({"action": "join", "room": self.room}).decode()
        member.join_sent_us = self.clock.now_us()
        try:
            await ws.send(frame)
        except ConnectionClosed:
            self.report.errors["join:closed"] += 1

    async def _connect(self) -> ClientConnection | None:
        reason = "connect:unknown"
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                return await connect(self.url, additional_headers=list(self.cfg.headers),
                                     open_timeout=self.cfg.connect_timeout, ping_interval=None,
                                     compression=None, close_timeout=5, max_size=2**20,
                                     proxy=self.proxy)
            except InvalidStatus as exc:
                reason = f"connect:http{exc.response.status_code}"
                if exc.response.status_code != 429:
                    break
                self.report.errors["connect:retried429"] += 1
                await asyncio.sleep(backoff_s(attempt))
            except TimeoutError:
                reason = "connect:timeout"
                break
            except (OSError, WebSocketException) as exc:
                reason = f"connect:{type(exc).__name__}"
                break
        self.report.totals["connectFailed"] += 1
        self.report.errors[reason] += 1
        return None

    async def _receive(self, member: Member) -> None:
        try:
            async for message in member.ws:
                self._on_message(member, message, self.clock.now_us())
        except ConnectionClosed:
            pass
        finally:
            if not self.closing:
                self.report.errors[f"closed_early:{member.ws.close_code}"] += 1

    def _on_message(self, member: Member, message: str | bytes, now_us: float) -> None:
        try:
            obj = orjson.loads(message)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            self.report.errors["unrecognised_frame"] += 1
            return
        action = obj.get("action")
        data = obj.get("data")
        if action == "joined" and obj.get("room") == self.room:
            if member.joined_us is not None:
                self.report.errors["joined:duplicate"] += 1
                return
            member.joined_us = now_us
            histo.record_us(self.report.hist("join"), now_us - member.join_sent_us)
            self.joined += 1
            self.changed.set()
        elif action == "presence" and obj.get("room") == self.room:
            member.presence += 1
            self.report.totals["presenceFrames"] += 1
        elif action == "broadcast" and isinstance(data, dict) and data.get("r") == self.run_id:
            member.broadcasts.append(now_us)
            if len(member.broadcasts) == 1:
                self.delivered += 1
                self.changed.set()
        elif action == "error":
            self.report.totals["errorFrames"] += 1
            self.report.errors[str(obj.get("error"))] += 1
        else:
            self.report.errors["unrecognised_frame"] += 1

    async def _close_all(self) -> None:
        self.closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(m.ws.close() for m in self.members)), 30)
        _, pending = await asyncio.wait(self.receivers, timeout=5) if self.receivers else ((), ())
        for task in pending:
            task.cancel()

    def _finish(self, publish_us: float, end_us: float) -> None:
        t, members = self.report.totals, self.members
        latency = self.report.hist("latency")
        for m in members:
            if m.broadcasts:
                histo.record_us(latency, m.broadcasts[0] - publish_us)
            self.report.close_codes[str(m.ws.close_code)] += 1
        once = sum(1 for m in members if len(m.broadcasts) == 1)
        t["expected"] = len(members) if t["sent"] else 0
        t["received"] = self.delivered
        t["lost"] = t["expected"] - self.delivered
        t["duplicated"] = sum(max(0, len(m.broadcasts) - 1) for m in members)
        missing = len(members) - self.joined
        if missing:
            self.report.errors["join_missing"] += missing
        window_us = self.window_ms * 1000
        # at most one frame per window: the windows a member listened through, plus one begun
        bounds = [math.ceil((end_us - m.join_sent_us) / window_us) + 1 for m in members]
        counts = [m.presence for m in members]
        over = sum(1 for c, b in zip(counts, bounds, strict=True) if c > b)
        sent_us = [m.join_sent_us for m in members]
        joined_us = [m.joined_us for m in members if m.joined_us is not None]
        firsts = [m.broadcasts[0] for m in members if m.broadcasts]
        self.report.duration_s = round((end_us - min(sent_us, default=end_us)) / 1e6, 3)
        self.report.meta["joinStorm"] = {
            "room": self.room, "members": len(members), "joined": self.joined,
            "joinMissing": missing, "joinMs": histo.percentiles_ms(self.report.hist("join")),
            "stormS": round((max(joined_us, default=end_us) - min(sent_us, default=end_us)) / 1e6, 3),
            "presence": {
                "windowMs": self.window_ms, "maxMembers": self.max_members,
                "frames": sum(counts), "perMemberMin": min(counts, default=0),
                "perMemberMean": round(sum(counts) / len(counts), 2) if counts else 0.0,
                "perMemberMax": max(counts, default=0), "boundMax": max(bounds, default=0),
                "overBound": over,
            },
            "broadcast": {
                "published": bool(t["sent"]), "expected": t["expected"], "exactlyOnce": once,
                "duplicated": t["duplicated"], "lost": t["lost"],
                "toFirstMemberMs": round((min(firsts) - publish_us) / 1000, 2) if firsts else None,
                "toLastMemberMs": round((max(firsts) - publish_us) / 1000, 2) if firsts else None,
            },
        }  # fmt: skip
        self.report.connections = [
            {"id": i, "joinMs": round((m.joined_us - m.join_sent_us) / 1000, 2)
             if m.joined_us is not None else None, "presenceFrames": m.presence,
             "broadcasts": len(m.broadcasts), "closeCode": m.ws.close_code}
            for i, m in enumerate(members)
        ]  # fmt: skip


def failed(report: Report) -> bool:
    """A join storm fails when a connection was refused, a member missed its ``joined`` or the
    broadcast, or got the broadcast twice."""
    storm: Any = report.meta.get("joinStorm", {})
    return bool(storm.get("joinMissing") or report.totals["connectFailed"]
                or report.totals["lost"] or report.totals["duplicated"]
                or not storm.get("broadcast", {}).get("published"))


async def run_join_storm(cfg: RunConfig, url: str, aws_endpoint: str | None,
                         out: TextIO = sys.stdout) -> Report:
    """Run the scenario; the broadcast is published through ``aws_endpoint``'s Kinesis."""
    from loadtest.publisher import make_publisher

    def publisher(room: str) -> Publish:
        return make_publisher(aws_endpoint, room)

    return await JoinStorm(cfg, url, publisher, out=out).run()
