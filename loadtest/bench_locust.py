"""``python -m loadtest.bench_locust``: one process vs ``--workers N`` on Locust, side by side.

Against the bare echo server (its own process), each engine steps the offered echo rate up until
a step loses a frame, gets an error frame or a p99 over 1 s, and reports the highest received
rate of a passing step (the zero-loss rate) and its generator CPU per frame. Both engines run in
the same run on the same machine; the figure that matters is their ratio. Bounded: a fixed list
of rates, a budget per engine, and a timeout per step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.bench import ServerProcess
from loadtest.machine import describe, machine

RATES = (1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000)
STEP_S = 4.0
CONNECTIONS = 50
P99_LIMIT_MS = 1000.0
BUDGET_S = 180.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Engine:
    name: str
    extra: list[str]
    best: float = 0.0
    cpu_us: str = "-"
    notes: list[str] = field(default_factory=list)


def step(url: str, engine: Engine, rate: float, out: Path) -> bool:
    """One run at ``rate``; True when it passed (0 lost, 0 error frames, p99 < 1 s)."""
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "loadtest", "--url", url, "-c", str(CONNECTIONS), "--ramp", "500",
           "-r", str(rate), "-d", str(STEP_S), "--drain", "5", "--warmup", "0", "--no-progress",
           "--json", str(out), *engine.extra]  # fmt: skip
    try:
        subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=STEP_S + 120)
    except subprocess.TimeoutExpired:
        engine.notes.append(f"{rate:.0f}/s: timed out")
        return False
    if not out.exists():
        engine.notes.append(f"{rate:.0f}/s: no report")
        return False
    data = json.loads(out.read_text())
    t, p99 = data["totals"], float(data["latencyMs"].get("latency", {}).get("p99", 0.0))
    ok = t["lost"] == 0 and t["errorFrames"] == 0 and t["sent"] > 0 and p99 < P99_LIMIT_MS
    cpu = data["meta"].get("generatorCpuPerFrameUs", "-")
    per_worker = [w.get("generatorCpuPerFrameUs") for w in data["meta"].get("workers", [])]
    engine.notes.append(f"{rate:.0f}/s: received {data['achieved']['receivedPerS']}/s, lost "
                        f"{t['lost']}, p99 {p99:.1f} ms, CPU/frame {cpu} us"
                        + (f" (workers {per_worker})" if per_worker else "")
                        + f" -> {'ok' if ok else 'limit'}")  # fmt: skip
    if ok and data["achieved"]["receivedPerS"] > engine.best:
        engine.best, engine.cpu_us = float(data["achieved"]["receivedPerS"]), str(cpu)
    return ok


def search(url: str, engine: Engine, out: Path, rates: tuple[int, ...], budget_s: float) -> None:
    t0 = time.perf_counter()
    for rate in rates:
        if time.perf_counter() - t0 + STEP_S * 3 > budget_s:
            engine.notes.append(f"stopped at the {budget_s:.0f} s budget")
            return
        if not step(url, engine, rate, out):
            return


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_locust", description=__doc__)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds per engine")
    p.add_argument("--rates", default=",".join(map(str, RATES)), help="offered rates to step through")
    args = p.parse_args(argv)
    rates = tuple(int(r) for r in args.rates.split(","))
    engines = [Engine("1 process (asyncio)", []),
               Engine(f"--workers {args.workers} (Locust)", ["--workers", str(args.workers)])]  # fmt: skip
    print(f"machine  {describe(machine())}")
    print(f"echo, {CONNECTIONS} connections, {STEP_S:g} s steps, zero loss and p99 < "
          f"{P99_LIMIT_MS:g} ms, against the bare echo server (its own process)", flush=True)  # fmt: skip
    with ServerProcess() as url, tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            search(url, engine, Path(tmp) / "r.json", rates, args.budget)
            print(f"\n{engine.name}: zero-loss rate {engine.best:.0f}/s, generator CPU "
                  f"{engine.cpu_us} us/frame", flush=True)  # fmt: skip
            for note in engine.notes:
                print(f"  {note}", flush=True)
    one, many = engines
    ratio = f"{many.best / one.best:.2f}x" if one.best else "-"
    print(f"\nratio    {many.name} / {one.name}: {ratio} "
          f"({many.best:.0f}/s vs {one.best:.0f}/s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
