"""The twin's shape without the twin: ``python -m loadtest.bench_floor``.

Runs ``make bench``'s sequential round trip and zero-loss throughput search against a bare echo
server and against :mod:`loadtest.floor_server` (aiohttp WebSocket server -> worker process ->
the runtime's signed HTTP POST to @connections -> WebSocket write: the hops every echo through the
twin crosses, with no emulation), each in its own process, in one run. The floor's share of the
bare server's throughput bounds what any twin of this shape can reach on the machine; compare it
with the twin's share in ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from loadtest.bench import (
    THROUGHPUT_BUDGET_S,
    Row,
    ServerProcess,
    format_table,
    sequential_rtt,
    throughput_search,
)
from loadtest.bench_rows import ratio as _ratio
from loadtest.machine import machine


def run(frames: int, budget_s: float) -> tuple[list[Row], list[str]]:
    """Both servers, the same measurements, one run: rows with the floor / bare ratios."""
    notes: list[str] = []
    with ServerProcess() as bare_url:  # the bare echo server
        bare_rtt = asyncio.run(sequential_rtt(bare_url, frames))
        bare_best, steps = asyncio.run(throughput_search(bare_url, budget_s))
        notes.extend(f"bare ws {n}" for n in steps)
    with ServerProcess("loadtest.floor_server", "FLOOR-READY") as floor_url:
        floor_rtt = asyncio.run(sequential_rtt(floor_url, frames))
        floor_best, steps = asyncio.run(throughput_search(floor_url, budget_s))
        notes.extend(f"floor {n}" for n in steps)
    rows = [
        Row(f"echo RTT {key}, 1 client, {frames} sequential", f"{floor_rtt[key]:.2f} ms (floor)",
            f"{bare_rtt[key]:.2f} ms (bare ws)", _ratio(floor_rtt[key], bare_rtt[key]))
        for key in ("p50", "p99")
    ]
    rows.append(Row("sustained echo throughput, zero loss, p99 < 1 s",
                    f"{floor_best:,.0f} frames/s (floor)", f"{bare_best:,.0f} frames/s (bare ws)",
                    f"{100 * floor_best / bare_best:.0f} % of bare" if bare_best > 0 else "-"))
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_floor",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=1000, help="sequential frames (1000)")
    parser.add_argument("--budget", type=float, default=THROUGHPUT_BUDGET_S,
                        help="seconds per throughput search (60)")
    args = parser.parse_args(argv)
    rows, notes = run(args.frames, args.budget)
    print(format_table(machine(), rows, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
