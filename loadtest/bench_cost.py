"""Lambda billed duration per 1,000 records per consumer, from the handler's own timing.

Each measured consumer's ``lambda_handler`` runs in this process as a warm Lambda container
runs it: full batches of ``BATCH`` (100) records of its own route, its replies posted to a bare
local @connections endpoint (:class:`loadtest.bench_post.Endpoint`). Every invocation is timed
(wall clock, as Lambda's ``Duration``) and billed as Lambda bills it, rounded up to the next
millisecond; the figure is the billed milliseconds per 1,000 records. ``python -m pipeline plan``
prices Lambda with it (``pipeline/plan/lambda_cost.json``, which ``python -m loadtest.bench``
writes with the run it came from).

Measured: the consumers whose records need no state but the sender (echo, fallback). A reply in
AWS waits on a network round trip this endpoint answers at once, so the figure is the compute
floor of the billed time, not its ceiling.

    python -m loadtest.bench_cost [--batches 20] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from loadtest.bench_post import BATCH, Endpoint, echo_event, handler_environment
from loadtest.machine import describe, machine

OUT = Path(__file__).resolve().parent.parent / "pipeline" / "plan" / "lambda_cost.json"
# consumer -> (route key, the frame's action) of the records it is measured on
CONSUMERS = {"echo": ("echo", "echo"), "fallback": ("$default", "no-such-action")}


def measure_consumer(name: str, url: str, batches: int) -> dict[str, float]:
    """Billed, wall and CPU ms per 1,000 records of consumer ``name`` (batches of ``BATCH``)."""
    route, action = CONSUMERS[name]
    events = [echo_event(BATCH, b * BATCH, route, action) for b in range(batches + 1)]
    with handler_environment(url):
        handler = importlib.import_module(f"consumers.{name}.handler").lambda_handler
        billed = wall = 0.0
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            handler(events[0], None)  # warm: the container's first batch is its cold start
            c0 = time.process_time()
            for event in events[1:]:
                t0 = time.perf_counter()
                response = handler(event, None)
                ms = (time.perf_counter() - t0) * 1000
                if response["batchItemFailures"]:
                    raise RuntimeError(f"{name}: batch failed: {response}")
                wall += ms
                billed += math.ceil(ms)
            cpu = (time.process_time() - c0) * 1000
    per = 1000 / (batches * BATCH)
    return {"billedMsPer1000": billed * per, "durationMsPer1000": wall * per,
            "cpuMsPer1000": cpu * per, "invocations": float(batches),
            "records": float(batches * BATCH)}


def measure(batches: int = 20) -> dict[str, dict[str, float]]:
    """Every measured consumer, against one bare endpoint started for the run."""
    if not 1 <= batches <= 1000:
        raise ValueError("batches must be 1..1000")
    with Endpoint() as url:
        return {name: measure_consumer(name, url, batches) for name in CONSUMERS}


def document(result: dict[str, dict[str, float]], command: str) -> dict[str, Any]:
    """What ``pipeline/plan/lambda_cost.json`` holds: the figures and the run they come from."""
    info = machine()
    return {
        "batchSize": BATCH,
        "source": {"command": command, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   "machine": describe(info), "platform": info["platform"]},
        "consumers": {name: {k: round(v, 3) for k, v in figures.items()}
                      for name, figures in result.items()},
    }


def rows(result: dict[str, dict[str, float]]) -> list[tuple[str, str, str, str]]:
    """``(name, value, baseline, ratio)`` per consumer: billed ms next to the CPU ms."""
    return [(f"{name} Lambda billed duration per 1,000 frames (batch {BATCH})",
             f"{f['billedMsPer1000']:.1f} ms billed", f"{f['cpuMsPer1000']:.1f} ms CPU",
             f"{f['billedMsPer1000'] / f['cpuMsPer1000']:.1f}x" if f["cpuMsPer1000"] else "-")
            for name, f in result.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help=f"timed batches of {BATCH}")
    parser.add_argument("--write", action="store_true", help=f"write {OUT.name} for plan")
    args = parser.parse_args(argv)
    result = measure(args.batches)
    print(f"machine: {describe(machine())}")
    for name, value, baseline, r in rows(result):
        print(f"{name:<56}{value:<20}{baseline:<16}{r}")
    if args.write:
        command = " ".join(["python -m loadtest.bench_cost", *(argv or sys.argv[1:])])
        OUT.write_text(orjson.dumps(document(result, command),
                                    option=orjson.OPT_INDENT_2).decode() + "\n")
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
