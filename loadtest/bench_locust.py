"""``python -m loadtest.bench_locust``: one process vs ``--workers N`` on Locust, side by side.

Against the bare echo server (its own process), each engine steps the offered echo rate up until
a step loses a frame, gets an error frame or a p99 over 1 s, bisects twice between the last pass
and that failure, and reports the highest received rate of a passing step (the zero-loss rate)
and its generator CPU per frame. The engines take
turns at each rate (the order alternating from one rate to the next), so a change in the load
of a shared machine falls on both; ``--repeat N`` does the whole search N times. The figure that
matters is the ratio of one search. Bounded: a fixed list of rates, a budget per search, and a
timeout per step.
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

RATES = (4000, 8000, 12000, 14000, 16000, 18000, 20000, 24000, 28000)
STEP_S = 4.0
CONNECTIONS = 50
P99_LIMIT_MS = 1000.0
BUDGET_S = 600.0
BISECTIONS = 2
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Engine:
    name: str
    extra: list[str]
    best: float = 0.0
    cpu_us: str = "-"
    good: float = 0.0  # the highest offered rate that passed
    bad: float = 0.0  # the lowest offered rate that failed (0: none yet)
    bisections: int = BISECTIONS
    done: bool = False
    notes: list[str] = field(default_factory=list)

    def next_rate(self, rates: tuple[int, ...]) -> float | None:
        """Up the list until a step fails, then halfway between the last pass and the first
        failure, :data:`BISECTIONS` times."""
        if not self.bad:
            higher = [r for r in rates if r > self.good]
            return float(higher[0]) if higher else None
        if self.bisections <= 0:
            return None
        self.bisections -= 1
        return round((self.good + self.bad) / 2, -2)

    def record(self, rate: float, ok: bool) -> None:
        if ok:
            self.good = max(self.good, rate)
        else:
            self.bad = min(self.bad, rate) if self.bad else rate


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
                        + f", load {data['meta'].get('machine', {}).get('load', '?')}"
                        + f" -> {'ok' if ok else 'limit'}")  # fmt: skip
    if ok and data["achieved"]["receivedPerS"] > engine.best:
        engine.best, engine.cpu_us = float(data["achieved"]["receivedPerS"]), str(cpu)
    return ok


def search(url: str, engines: list[Engine], out: Path, rates: tuple[int, ...], budget_s: float) -> None:
    """Both engines, taking turns (in alternating order) until each has found its rate."""
    t0 = time.perf_counter()
    for n in range(len(rates) + BISECTIONS + 1):
        for engine in engines if n % 2 == 0 else engines[::-1]:
            if engine.done:
                continue
            rate = engine.next_rate(rates)
            if rate is None:
                engine.done = True
                continue
            if time.perf_counter() - t0 + STEP_S * 6 > budget_s:
                engine.notes.append(f"stopped at the {budget_s:.0f} s budget")
                engine.done = True
                continue
            engine.record(rate, step(url, engine, rate, out))
        if all(e.done for e in engines):
            return


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_locust", description=__doc__)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds per search")
    p.add_argument("--rates", default=",".join(map(str, RATES)), help="offered rates to step through")
    p.add_argument("--repeat", type=int, default=1, help="searches, one after the other")
    args = p.parse_args(argv)
    rates = tuple(int(r) for r in args.rates.split(","))
    print(f"machine  {describe(machine())}")
    print(f"echo, {CONNECTIONS} connections, {STEP_S:g} s steps, zero loss and p99 < "
          f"{P99_LIMIT_MS:g} ms, against the bare echo server (its own process)", flush=True)  # fmt: skip
    ratios = []
    with ServerProcess() as url, tempfile.TemporaryDirectory() as tmp:
        for run in range(1, args.repeat + 1):
            engines = [Engine("1 process (asyncio)", []),
                       Engine(f"--workers {args.workers} (Locust)", ["--workers", str(args.workers)])]  # fmt: skip
            print(f"\nsearch {run} (load {describe(machine()).rsplit('load ', 1)[-1]} at its start)")
            search(url, engines, Path(tmp) / "r.json", rates, args.budget)
            for engine in engines:
                print(f"{engine.name}: zero-loss rate {engine.best:.0f}/s, generator CPU "
                      f"{engine.cpu_us} us/frame", flush=True)  # fmt: skip
                for note in engine.notes:
                    print(f"  {note}", flush=True)
            one, many = engines
            ratio = f"{many.best / one.best:.2f}x" if one.best else "-"
            ratios.append(ratio)
            print(f"ratio    {many.name} / {one.name}: {ratio} "
                  f"({many.best:.0f}/s vs {one.best:.0f}/s; load {describe(machine()).rsplit('load ', 1)[-1]} "
                  "at the end)", flush=True)  # fmt: skip
    if args.repeat > 1:
        print(f"\nratios   {', '.join(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
