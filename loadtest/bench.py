"""``python -m loadtest.bench`` (``make bench``): every figure measured side by side in one run.

Three echo servers, one after the other, each in its own process: the bare WebSocket echo
server, the floor server (the twin's hops alone, :mod:`loadtest.floor_server`) and the twin
(``python -m pipeline local`` on free ports, or ``--url``). For each: the sequential round trip,
the CPU per echo frame at 1,000 frames/s (server process and workers, from /proc) and the highest
zero-loss rate. Then the runtime's CPU per @connections post next to boto3's, the echo worker's
CPU per record, each consumer's cold import next to ``import boto3``, and the other parts' figures.
The table is printed, written to ``docs/benchmarks.md`` (``--markdown``) and, with ``--json``,
as rows a script can search (:mod:`loadtest.bench_rows` says how). Every measurement is bounded
in count and time; a part that fails prints ``n/a (...)`` instead of stopping the run.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from loadtest import histo
from loadtest.bench_rows import (
    CPU_RATE,
    EchoServerFigures,
    Measured,
    Row,
    build,
    markdown,
)
from loadtest.bench_rows import notes as notes_of
from loadtest.bench_rows import ratio as _ratio
from loadtest.config import RunConfig
from loadtest.machine import describe, machine
from loadtest.proc_cpu import TreeCpu
from loadtest.runner import LoadRun
from loadtest.target import Target, start_twin

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = ROOT / "docs" / "benchmarks.md"
SEQUENTIAL_FRAMES = 1000
THROUGHPUT_RATES = (250, 500, 1000, 2000, 4000, 8000, 16000)
THROUGHPUT_STEP_S = 3.0
STEP_WARMUP_S = 1.0
THROUGHPUT_BUDGET_S = 60.0
THROUGHPUT_P99_LIMIT_MS = 1000.0
REPLY_TIMEOUT_S = 5.0

__all__ = ["Row", "format_table", "machine", "run_suite", "sequential_rtt", "throughput_search"]


# --- 1. sequential echo round trip ---------------------------------------------------------
async def sequential_rtt(url: str, frames: int = SEQUENTIAL_FRAMES) -> dict[str, float]:
    """One client, ``frames`` echo frames one after the other: p50/p99 round trip (ms)."""
    hist = histo.new_histogram()
    lost = 0
    async with connect(url, ping_interval=None, compression=None, open_timeout=10) as ws:
        for seq in range(frames):
            frame = orjson.dumps({"action": "echo", "data": {"s": seq}}).decode()
            t0 = time.perf_counter()
            await ws.send(frame)
            try:
                async with asyncio.timeout(REPLY_TIMEOUT_S):
                    while True:
                        reply = orjson.loads(await ws.recv())
                        data = reply.get("data") if isinstance(reply, dict) else None
                        if isinstance(data, dict) and data.get("s") == seq:
                            break
            except TimeoutError:
                lost += 1
                if lost >= 3:
                    break  # a target that stopped answering is not worth 5 s per frame
                continue
            histo.record_us(hist, (time.perf_counter() - t0) * 1e6)
    p = histo.percentiles_ms(hist)
    return {"p50": float(p["p50"]), "p99": float(p["p99"]), "count": float(p["count"]), "lost": lost}


class ServerProcess:
    """``python -m <module> --port 0`` (or ``args``) in its own process (as the twin is), for a
    fair baseline; inside ``with``, the URL from its ready line (``<READY> ws://...``)."""

    def __init__(self, module: str = "loadtest.echo_server", ready: str = "ECHO-READY",
                 args: tuple[str, ...] = ("--port", "0")) -> None:
        self.module, self.ready, self.args = module, ready, args

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the first line is the ready line (or EOF on failure)
        if not line.startswith(self.ready + " "):
            self.proc.kill()
            raise RuntimeError(f"{self.module} did not start: {line!r}")
        return line.split()[1]

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# --- 2. sustained throughput ---------------------------------------------------------------
async def throughput_search(
    url: str,
    budget_s: float = THROUGHPUT_BUDGET_S,
    rates: tuple[int, ...] = THROUGHPUT_RATES,
    step_s: float = THROUGHPUT_STEP_S,
) -> tuple[float, list[str]]:
    """Highest echo rate with zero loss, no error frame and p99 < 1 s: step the offered rate up
    until a step fails, then bisect three times between the last good and the failing rate. Bounded
    by ``budget_s`` (each step is a 1 s warm-up and 3 s of load, each with its drain)."""
    best, good, notes = 0.0, 0.0, []
    t0 = time.perf_counter()

    async def step(rate: float) -> bool:
        nonlocal best
        # Each step warms up first at its own rate (unrecorded, drained), for the bare server
        # and the twin alike: a step measures the sustained rate, not the cold start of a
        # worker process that a higher rate makes the twin spawn (Lambda scaling out).
        cfg = RunConfig(connections=20, rate=rate, duration=step_s, drain=3.0,
                        payload=128, ramp=1000, progress=False,
                        warmup=STEP_WARMUP_S)  # fmt: skip
        report = await LoadRun(cfg, url, out=io.StringIO()).run()
        p99 = float(histo.percentiles_ms(report.hist("latency"))["p99"])
        t = report.totals
        ok = t["lost"] == 0 and t["errorFrames"] == 0 and t["sent"] > 0 and p99 < THROUGHPUT_P99_LIMIT_MS
        notes.append(f"{rate:.0f}/s: lost {t['lost']}, p99 {p99:.1f} ms -> {'ok' if ok else 'limit'}")
        if ok:
            best = max(best, report.achieved()["receivedPerS"])
        return ok

    def time_left() -> bool:
        if time.perf_counter() - t0 + step_s * 3 > budget_s:
            notes.append(f"stopped at the {budget_s:.0f} s budget")
            return False
        return True

    bad: float | None = None
    for rate in rates:
        if not time_left():
            break
        if not await step(rate):
            bad = rate
            break
        good = rate
    for _ in range(3):  # refine between the last good rate and the first failing one
        if bad is None or not time_left():
            break
        mid = (good + bad) / 2
        if await step(mid):
            good = mid
        else:
            bad = mid
    return best, notes


# --- 3. broadcast fan-out (another part) -------------------------------------------------------
def fanout(target: Target | None, connections: int = 1000) -> Row:
    """``loadtest.bench_fanout.measure`` (docs/contracts.md): runtime vs sequential postToConnection."""
    name = f"broadcast to {connections} connections"
    try:
        import importlib

        mod = importlib.import_module("loadtest.bench_fanout")
    except ModuleNotFoundError:
        return Row(name, "n/a (missing)")
    func: Callable[..., Any] | None = getattr(mod, "measure", None)
    if func is None:
        return Row(name, "n/a (bench_fanout.measure missing)")
    import inspect

    params = inspect.signature(func).parameters
    offered: dict[str, object] = {"connections": connections}
    if target is not None:
        offered.update({"ws_url": target.ws, "aws_endpoint": target.aws or "",
                        "connections_url": target.connections or ""})  # fmt: skip
    kwargs = {k: v for k, v in offered.items() if k in params}
    try:
        result = func(**kwargs)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except Exception as exc:  # another part's failure is a figure, not a crash of the suite
        return Row(name, f"n/a ({type(exc).__name__})")
    runtime_s = float(result.get("runtimeS", 0.0))
    sequential_s = float(result.get("sequentialS", 0.0))
    return Row(name, f"{runtime_s * 1000:.0f} ms (runtime)",
               f"{sequential_s * 1000:.0f} ms (sequential)", _ratio(sequential_s, runtime_s))  # fmt: skip


# --- 4. Kinesis data decode --------------------------------------------------------------------
def decode_rows(records: int = 20_000) -> list[Row]:
    """Runtime ``decode_record`` (plain and KPL-aggregated) vs stdlib ``json`` + base64."""
    try:
        from loadtest.bench_decode import measure_decode
    except ModuleNotFoundError:
        return [Row("Kinesis data decode", "n/a (missing)")]
    try:
        result = measure_decode(records)
    except ImportError:
        return [Row("Kinesis data decode", "n/a (pipeline.runtime missing)")]
    rows = [
        Row("Kinesis data decode, plain JSON", f"{result['runtime']:,.0f} rec/s",
            f"{result['stdlib']:,.0f} rec/s (stdlib json)", _ratio(result["runtime"], result["stdlib"])),
    ]  # fmt: skip
    if "aggregated" in result:
        rows.append(Row("Kinesis data decode, KPL-aggregated (x100)", f"{result['aggregated']:,.0f} rec/s",
                        f"{result['stdlib']:,.0f} rec/s (stdlib json)",
                        _ratio(result["aggregated"], result["stdlib"])))  # fmt: skip
    return rows


# --- 5. @connections post, echo record CPU, cold import ------------------------------------------
def post_figures(quick: bool) -> list[tuple[str, str, str, str]] | None:
    """``loadtest.bench_post``: CPU per post (runtime vs boto3) and the echo worker's per record."""
    try:
        from loadtest import bench_post

        return bench_post.rows(bench_post.measure(posts=500 if quick else 2000,
                                                  batches=3 if quick else 10))
    except Exception:  # a figure, not a crash of the suite
        return None


def import_figures(quick: bool) -> list[tuple[str, str, str, str]] | None:
    """``loadtest.bench_import``: each consumer's cumulative import time next to boto3's."""
    try:
        from loadtest import bench_import

        return bench_import.rows(bench_import.measure(rounds=1 if quick else 3))
    except Exception:  # a figure, not a crash of the suite
        return None


def first_batch_figures(quick: bool) -> list[tuple[str, str, str, str]] | None:
    """``loadtest.bench_import.measure_first_batch``: the echo handler's load and first batch
    (CPU) next to ``import boto3``'s, and whether that batch loaded boto3."""
    try:
        from loadtest import bench_import

        return bench_import.first_batch_rows(
            bench_import.measure_first_batch(rounds=1 if quick else 3))
    except Exception:  # a figure, not a crash of the suite
        return None


# --- the suite ----------------------------------------------------------------------------------
QUIET_SHARE = 0.05  # of one core: the server and its workers are idle
QUIET_TIMEOUT_S = 15.0


async def quiet(pid: int, window_s: float = 0.5, timeout_s: float = QUIET_TIMEOUT_S) -> bool:
    """Wait until process ``pid`` and its children use under :data:`QUIET_SHARE` of a core over
    ``window_s`` (at most ``timeout_s``); whether they did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    before = TreeCpu.sample(pid)
    while before is not None and loop.time() < deadline:
        await asyncio.sleep(window_s)  # the sampling window itself, not a wait for work
        after = TreeCpu.sample(pid)
        if after is None:
            return False
        server_s, workers_s = after.since(before)
        if server_s + workers_s < QUIET_SHARE * window_s:
            return True
        before = after
    return False


async def cpu_per_frame(url: str, pid: int, rate: int = CPU_RATE, seconds: float = 4.0
                        ) -> tuple[float, float] | None:
    """CPU µs per echo frame of the server process ``pid`` and of its children (the workers),
    at ``rate`` frames/s for ``seconds``, after one unsampled second at that rate."""
    def cfg(duration: float) -> RunConfig:
        return RunConfig(connections=20, rate=rate, duration=duration, drain=3.0, payload=128,
                         ramp=1000, progress=False)  # fmt: skip

    await LoadRun(cfg(1.0), url, out=io.StringIO()).run()  # workers spawned, code paths warm
    # The warm-up's connections closed: the twin's $disconnect work (roster deletes, presence,
    # the first batch of other consumers) is not the echo frames' cost, so sample once it is done.
    await quiet(pid)
    before = TreeCpu.sample(pid)
    report = await LoadRun(cfg(seconds), url, out=io.StringIO()).run()
    after = TreeCpu.sample(pid)
    received = report.totals["received"]
    if before is None or after is None or received <= 0:
        return None
    server_s, workers_s = after.since(before)
    return server_s / received * 1e6, workers_s / received * 1e6


def measure_echo(figures: EchoServerFigures, url: str, pid: int | None, frames: int,
                 budget_s: float) -> EchoServerFigures:
    """Round trip, CPU per frame (when the process is ours) and zero-loss rate of one server."""
    figures.rtt = asyncio.run(sequential_rtt(url, frames))
    if pid is not None:
        figures.cpu_us = asyncio.run(cpu_per_frame(url, pid))
    figures.rate, figures.steps = asyncio.run(throughput_search(url, budget_s))
    return figures


def cost_figures(quick: bool) -> dict[str, dict[str, float]] | None:
    """``loadtest.bench_cost``: billed Lambda ms per 1,000 records per consumer (batch 100)."""
    try:
        from loadtest import bench_cost

        return bench_cost.measure(batches=5 if quick else 20)
    except Exception:  # a figure, not a crash of the suite
        return None


def run_suite(url: str | None, quick: bool, extras: bool = True
              ) -> tuple[dict[str, str], list[Row], list[str], dict[str, dict[str, float]] | None]:
    """Bare, floor and twin, one after the other, then the runtime's figures: one run."""
    frames = 200 if quick else SEQUENTIAL_FRAMES
    budget = 20.0 if quick else THROUGHPUT_BUDGET_S
    info = machine()
    m = Measured(frames, EchoServerFigures("bare ws"), EchoServerFigures("floor"),
                 EchoServerFigures("twin"))
    notes: list[str] = []
    with ServerProcess() as bare_url:
        measure_echo(m.bare, bare_url, None, frames, budget)
    floor = ServerProcess("loadtest.floor_server", "FLOOR-READY")
    with floor as floor_url:
        measure_echo(m.floor, floor_url, floor.proc.pid, frames, budget)
    target: Target | None = None
    try:
        target = (Target(ws=url, aws=None) if url is not None
                  else start_twin("dev", ("--port", "0", "--aws-port", "0")))
        proc = target.process
        measure_echo(m.twin, target.ws, proc.pid if proc is not None else None, frames, budget)
        if extras:
            m.extra.append(fanout(target))
    except Exception as exc:  # the twin is another part: report, do not crash
        notes.append(f"twin: {exc}".splitlines()[0])
    finally:
        if target is not None:
            target.stop()
    m.post = post_figures(quick)
    m.imports = import_figures(quick)
    m.first_batch = first_batch_figures(quick)
    cost = cost_figures(quick)
    if cost is not None:
        from loadtest.bench_cost import rows as cost_rows

        m.extra += [Row(*r) for r in cost_rows(cost)]
    if extras:
        m.extra += decode_rows(5_000 if quick else 20_000)
        m.extra.append(room_broadcast(1000 if quick else 2000, notes))
    return info, build(m), [*notes_of(m), *notes], cost


def room_broadcast(room_size: int, notes: list[str]) -> Row:
    """One room through the fan-out tier (``loadtest.bench_broadcast``): time to the last
    delivery against the quota-bound time K x N / rate, as an efficiency."""
    from loadtest import bench_broadcast

    name = f"broadcast to a room of {room_size:,}, 15 ms @connections (fan-out tier)"
    try:
        args = bench_broadcast.build_parser().parse_args(["--room-size", str(room_size)])
        r = asyncio.run(bench_broadcast.run(args))
    except (Exception, SystemExit) as exc:  # another part missing: report, do not crash
        return Row(name, f"n/a ({str(exc).splitlines()[0][:60]})")
    notes.append(f"room broadcast: lost {r['lost']}, out of order {r['out_of_order']}, "
                 f"capacity {r['capacity']:,.0f} posts/s, share {r['fanout_share']:,.0f} posts/s")
    return Row(name, f"{r['last_delivery_s']:.1f} s to last delivery",
               f"{r['quota_bound_s']:.1f} s = K x N / rate limit",
               f"{r['efficiency']:.0%} efficiency")


def format_table(info: dict[str, str], rows: list[Row], notes: list[str]) -> str:
    head = (f"machine: {describe(info)} (1-min load average at the start), {info['platform']}\n"
            "every ratio compares figures measured in this run, on this machine")
    w = max(len(r.name) for r in rows) + 2
    lines = [head, "", f"{'benchmark':<{w}}{'measured':<26}{'baseline':<34}ratio", "-" * (w + 66)]
    lines += [f"{r.name:<{w}}{r.value:<26}{r.baseline:<34}{r.ratio}" for r in rows]
    if notes:
        lines += ["", *(f"  {n}" for n in notes)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="ws:// URL of a running twin (default: start one on free "
                                      "ports, stopped afterwards)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer frames, a 20 s budget per throughput search")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--markdown", type=Path, default=MARKDOWN,
                        help="the generated Markdown page (default docs/benchmarks.md)")
    parser.add_argument("--no-write", action="store_true",
                        help="write neither the Markdown page nor the plan's measured Lambda "
                             "cost (a --quick run writes neither)")
    args = parser.parse_args(argv)
    t0, started = time.perf_counter(), datetime.now(UTC)
    info, rows, notes, cost = run_suite(args.url, args.quick)
    print(format_table(info, rows, notes))
    if args.json:
        args.json.write_text(json_dump(info, rows, notes))
    if args.no_write or args.quick:
        return 0
    command = " ".join(["python -m loadtest.bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        load_end = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        load_end = "?"
    args.markdown.write_text(markdown(
        info, rows, notes, command=command, load_end=load_end,
        date=started.strftime("%Y-%m-%d %H:%M UTC"), seconds=time.perf_counter() - t0))
    print(f"\nwrote {args.markdown}")
    if cost is not None:
        from loadtest.bench_cost import OUT, document

        OUT.write_text(orjson.dumps(document(cost, command),
                                    option=orjson.OPT_INDENT_2).decode() + "\n")
        print(f"wrote {OUT}")
    return 0


def json_dump(info: dict[str, str], rows: list[Row], notes: list[str]) -> str:
    return orjson.dumps({"machine": info, "rows": [r.__dict__ for r in rows], "notes": notes},
                        option=orjson.OPT_INDENT_2).decode()  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
