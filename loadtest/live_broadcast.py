"""The broadcast scenario on Locust: one publisher (the master), the room's members on every worker.

Why the master publishes. Broadcast accounting needs one sequence of messages that every member
is checked against: a member lost a message only if it was published, and "every member got
message k" needs the receipts of all workers. So there is exactly one publisher, and it is the
master: it is the one process that talks to every worker, it carries no connections (its
timeline is not slowed by receipts), and plain Locust's single process plays both parts. The
exchange, in two custom Locust messages besides the report every worker already sends:

1. ``loadtest_broadcast_ready`` (worker -> master): when Locust's spawning is complete, each
   worker's members join the room (the chat ``join`` action, waiting for ``joined``: the same
   path as any client, on any stage) and the worker says how many it has. When every worker has
   said so, the master publishes: ``--lt-rate`` messages/s for ``--lt-duration`` s, open loop
   (:class:`Publisher`, the single-process runner's publisher: one at a time, latency from each
   message's intended publish time).
2. ``loadtest_broadcast_published`` (master -> every worker): how many it published (numbers
   0..n-1) and which of them failed. Each worker then drains and closes its books exactly as
   ``python -m loadtest --scenario broadcast`` does, every member against that one count: received,
   lost, duplicated, out of order, unexpected (:class:`LiveBroadcast`). Until it arrives, the
   planned count bounds the valid numbers, and each message's body carries the run's origin,
   so the per-second windows of every worker line up with the publisher's.

The master's own report (messages sent, publish errors) is one more row, ``publisher``, so the
merged totals are the sum of the rows. Each worker also reports, per message, how many of its
members received it and when the first and the last did; the master adds them up
(:func:`broadcast_facts`) into what the single-process broadcast reports: members, messages,
deliveries exactly once, lost, duplicates, members out of order, and the time from a message's
intended publish to its last member (a histogram over messages; first and last delivery of the
run from the first publish). Across machines that time mixes the master's and the workers'
clocks.

Nothing here imports Locust or gevent (loadtest/locustfile.py wires it to Locust).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from loadtest import histo
from loadtest.config import RunConfig
from loadtest.live import LiveReport, LiveRun
from loadtest.machine import machine
from loadtest.report import Report
from loadtest.runner import LOCAL_HOSTS, Clock
from loadtest.schedule import Timeline

READY = "loadtest_broadcast_ready"
PUBLISHED = "loadtest_broadcast_published"
PUBLISHER_ROW = "publisher"
BODY_FIXED_BYTES = 80  # the body's fields besides the padding (as the single-process publisher)


def room_name(run_id: str) -> str:
    return f"lt-{run_id}"


async def _never(body: dict[str, Any]) -> None:
    raise RuntimeError("on Locust, the master publishes")


class LiveBroadcast(LiveRun):
    """A worker's members of the room: joined, then accounted against the master's count."""

    def __init__(self, cfg: RunConfig, url: str, *, run_id: str, rate: float,
                 say_ready: Callable[[dict[str, Any]], None]) -> None:  # fmt: skip
        super().__init__(cfg, url, user_rate=rate, publish=_never)
        self.run_id = run_id
        self.room = room_name(run_id)
        self.say_ready = say_ready
        self.told = asyncio.Event()
        self.told_data: dict[str, Any] | None = None
        self.origin_set = False
        self.said = False
        self.deliveries: dict[int, list[float]] = {}  # seq -> [members, first us, last us]

    def run_rate(self, connections: int) -> float:
        return self.user_rate  # the master's publishes/s, whatever the connections

    def _room(self, i: int) -> str:
        return self.room

    def on_published(self, data: dict[str, Any]) -> None:
        """The master's count (call on the run's loop)."""
        if data.get("runId") == self.run_id and self.told_data is None:
            self.told_data = data
            self.told.set()

    def stop(self) -> None:
        super().stop()
        self.told.set()  # no more waiting for the master

    async def _publisher(self, timeline: Timeline) -> None:
        self.published = timeline.total  # until the master says, the plan bounds the numbers
        if not self.stopping:
            await self._join_all()
        self._say(joined=sum(1 for f in self.joined if f.done()))
        if not self.stopping:
            await self.told.wait()
        data = self.told_data
        if data is None:  # the master never said: what arrived is all that is known
            self.published = max(self.deliveries, default=-1) + 1
            self.report.meta["publishedUnknown"] = True
            return
        self.published = int(data["published"])
        self.publish_failed = len(data["failed"])

    def _say(self, joined: int) -> None:
        if not self.said:
            self.said = True
            self.say_ready({"runId": self.run_id, "members": len(self.conns), "joined": joined})

    async def begin(self) -> LiveReport:
        try:
            return await super().begin()
        finally:
            self._say(joined=0)  # a process without members: the master must not wait for it

    def _on_body(self, i: int, body: Any, now_us: float, timing: Any) -> None:
        if not self.origin_set and isinstance(body, dict) and body.get("r") == self.run_id:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self.start_us, self.origin_set = float(body["o"]), True
        before = self.valid
        super()._on_body(i, body, now_us, timing)
        if self.valid > before:  # a member's first receipt of a published message
            seq = int(body["s"])
            d = self.deliveries.get(seq)
            if d is None:
                self.deliveries[seq] = [1, now_us, now_us]
            else:
                d[0] += 1
                d[1], d[2] = min(d[1], now_us), max(d[2], now_us)

    def _finish(self) -> None:
        super()._finish()
        meta = self.report.meta
        meta.update(rate=0.0, room=self.room)  # the publisher's row offers the load
        if self.told_data is not None:
            self.report.duration_s = float(self.told_data["durationS"])

    def payload_extra(self) -> dict[str, Any]:
        return {"deliveries": [[s, *d] for s, d in sorted(self.deliveries.items())]}


class Publisher:
    """The master's publisher: ``rate`` messages/s for ``duration`` s to the room, one at a
    time on the open-loop timeline (a late one goes at once), through ``put`` (blocking)."""

    def __init__(self, cfg: RunConfig, url: str, *, run_id: str, put: Callable[[dict[str, Any]], None],
                 sleep: Callable[[float], None]) -> None:  # fmt: skip
        self.cfg, self.run_id, self.put, self.sleep = cfg, run_id, put, sleep
        self.clock = Clock()
        self.report = Report(meta={
            "url": url.split("?", 1)[0], "scenario": "broadcast", "connections": 0,
            "rate": cfg.rate, "durationS": cfg.duration, "payloadBytes": cfg.payload,
            "runId": run_id, "room": room_name(run_id), "machine": machine(),
            "clock": "same-host" if urllib.parse.urlsplit(url).hostname in LOCAL_HOSTS else "remote",
        })  # fmt: skip
        self.ready: dict[str, dict[str, Any]] = {}
        self.origin_us = 0.0
        self.due_us: list[float] = []
        self.sent_us: list[float] = []
        self.failed: list[int] = []
        self.stopping = False
        self.cpu_s = self.cpu0 = 0.0

    def run(self) -> None:
        cfg, clock = self.cfg, self.clock
        self.report.started_at = time.time()
        self.origin_us = clock.now_us()
        t0, self.cpu0 = time.perf_counter(), time.process_time()
        pad = "x" * max(0, cfg.payload - BODY_FIXED_BYTES)
        for seq, due in Timeline(cfg.rate, cfg.duration, 1).frames_for(0):
            delay = clock.mono_of(self.origin_us) + due - time.perf_counter()
            if delay > 0 and not self.stopping:
                self.sleep(delay)
            if self.stopping:
                break
            due_us, now_us = self.origin_us + due * 1e6, clock.now_us()
            self.due_us.append(due_us)
            self.sent_us.append(now_us)
            body = {"r": self.run_id, "c": -1, "s": seq, "t": int(due_us), "a": int(now_us),
                    "o": int(self.origin_us), "p": pad}  # fmt: skip
            try:
                self.put(body)
            except Exception as exc:  # a failed publish is a documented error, not a crash
                self.failed.append(seq)
                self.report.errors[f"publish:{type(exc).__name__}"] += 1
                continue
            self.report.record_sent(due)
        elapsed = time.perf_counter() - t0
        self.report.duration_s = round(elapsed if self.stopping else max(elapsed, cfg.duration), 3)
        self.cpu_s = time.process_time() - self.cpu0

    def stop(self) -> None:
        """Stop publishing; stopped mid-run, the figures so far (a put in flight included)."""
        self.stopping = True
        if not self.report.duration_s and self.origin_us:
            self.report.duration_s = round((self.clock.now_us() - self.origin_us) / 1e6, 3)
            self.cpu_s = time.process_time() - self.cpu0

    def told(self) -> dict[str, Any]:
        """What every worker is told: the count published (numbers 0..n-1) and the failures."""
        return {"runId": self.run_id, "published": len(self.due_us), "failed": list(self.failed),
                "durationS": self.report.duration_s}  # fmt: skip

    def payload(self) -> dict[str, Any]:
        """The master's row for the merge (see loadtest/distributed.py)."""
        return {"worker": PUBLISHER_ROW, "cpuS": self.cpu_s, "report": self.report.to_json(),
                "publisher": {**self.told(), "dueUs": self.due_us, "sentUs": self.sent_us,
                              "joined": sum(int(r["joined"]) for r in self.ready.values())}}  # fmt: skip


def broadcast_facts(out: Report, payloads: list[dict[str, Any]]) -> None:
    """The single-process broadcast's facts in the merged report ``out``: ``meta.broadcast`` and
    the ``toLastMember`` histogram (a message's intended publish to its last member's receipt,
    over the messages every member received)."""
    pub = next(p["publisher"] for p in payloads if "publisher" in p)
    published, failed = int(pub["published"]), set(pub["failed"])
    members = int(out.totals["connectionsOpened"])
    merged: dict[int, list[float]] = {}
    for p in payloads:
        for seq, n, first, last in p.get("deliveries", []):
            m = merged.setdefault(int(seq), [0, first, last])
            m[0] += n
            m[1], m[2] = min(m[1], first), max(m[2], last)
    due, sent = pub["dueUs"], pub["sentUs"]
    to_last = out.hist("toLastMember")
    complete = 0
    for seq, (n, _, last) in merged.items():
        if seq < len(due) and n >= members:
            complete += 1
            histo.record_us(to_last, last - due[seq])
    rows = out.connections
    once = sum(1 for r in rows if r.get("received") == r.get("expected") == published - len(failed)
               and not (r.get("lost") or r.get("duplicated") or r.get("unexpected")))  # fmt: skip
    t0 = sent[0] if sent else 0.0
    out.meta["connections"] = members
    out.meta["broadcast"] = {
        "room": out.meta.get("room"), "members": members, "joined": int(pub["joined"]),
        "published": published, "publishFailed": len(failed), "expected": int(out.totals["expected"]),
        "received": int(out.totals["received"]), "exactlyOnce": once, "lost": int(out.totals["lost"]),
        "duplicated": int(out.totals["duplicated"]),
        "outOfOrderMembers": sum(1 for r in rows if r.get("outOfOrder")),
        "completeMessages": complete, "toLastMemberMs": histo.percentiles_ms(to_last),
        "firstDeliveryS": round((min(m[1] for m in merged.values()) - t0) / 1e6, 3) if merged else None,
        "lastDeliveryS": round((max(m[2] for m in merged.values()) - t0) / 1e6, 3) if merged else None,
    }  # fmt: skip
