"""The live progress line (terminals only): once per second, rewritten in place."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TextIO

from loadtest import histo
from loadtest.report import Report


def progress_text(report: Report, elapsed: float, sent_rate: float, recv_rate: float) -> str:
    p = histo.percentiles_ms(report.hist("latency"))
    errors = sum(report.errors.values())
    return (
        f"[{elapsed:5.0f}s] sent {sent_rate:7.0f}/s  recv {recv_rate:7.0f}/s  "
        f"p50 {p['p50']:7.2f} ms  p99 {p['p99']:7.2f} ms  errors {errors}"
    )


async def progress_loop(report: Report, stop: asyncio.Event, out: TextIO) -> None:
    """Print one line per second until ``stop`` is set, then end the line."""
    t0 = time.perf_counter()
    last_sent, last_recv, last_t = 0, 0, t0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        now = time.perf_counter()
        sent = report.totals["sent"]
        recv = report.hist("latency").get_total_count()
        dt = max(now - last_t, 1e-6)
        line = progress_text(report, now - t0, (sent - last_sent) / dt, (recv - last_recv) / dt)
        out.write("\r" + line)
        out.flush()
        last_sent, last_recv, last_t = sent, recv, now
    out.write("\n")
    out.flush()
