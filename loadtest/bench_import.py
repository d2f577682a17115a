"""Cold start: each consumer handler's cumulative import time next to ``import boto3``, same run.

Each figure is the top-level cumulative time ``python -X importtime -c "import <module>"``
reports in a fresh interpreter (what a new Lambda container pays before its first record), the
median of ``rounds`` runs, the consumers and boto3 interleaved so the box's load falls on both.

    python -m loadtest.bench_import [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "boto3"


def consumers() -> list[str]:
    """The consumers' handler modules (a consumer is its folder, discovered)."""
    return sorted(f"consumers.{p.parent.name}.handler"
                  for p in (ROOT / "consumers").glob("*/handler.py"))


def import_ms(module: str) -> float:
    """Cumulative import time of ``module`` in a fresh interpreter, in ms."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
                          check=True)
    for line in reversed(proc.stderr.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    raise RuntimeError(f"no importtime line for {module}")


def measure(rounds: int = 5) -> dict[str, float]:
    """Median cumulative import ms of every consumer handler and of boto3."""
    if not 1 <= rounds <= 50:
        raise ValueError("rounds must be 1..50")
    modules = [BASELINE, *consumers()]
    samples: dict[str, list[float]] = {m: [] for m in modules}
    for _ in range(rounds):
        for module in modules:
            samples[module].append(import_ms(module))
    return {m: statistics.median(v) for m, v in samples.items()}


def rows(result: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """``(name, value, baseline, ratio)`` per consumer for ``loadtest.bench``'s table."""
    base = result[BASELINE]
    return [(f"cold start: import {m.split('.')[1]} handler", f"{ms:.0f} ms",
             f"{base:.0f} ms (import boto3)", f"{ms / base:.2f}x" if base > 0 else "-")
            for m, ms in result.items() if m != BASELINE]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_import", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    for name, value, baseline, ratio in rows(measure(args.rounds)):
        print(f"{name:<40}{value:<12}{baseline:<28}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
