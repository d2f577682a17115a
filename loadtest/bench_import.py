"""Cold start: each consumer handler's cumulative import time next to ``import boto3``, same run.

Each figure is the top-level cumulative time ``python -X importtime -c "import <module>"``
reports in a fresh interpreter (what a new Lambda container pays before its first record), the
median of ``rounds`` runs, the consumers and boto3 interleaved so the box's load falls on both.

The first batch (:func:`measure_first_batch`): the CPU a fresh interpreter spends importing the
echo handler and running its first batch (``FIRST_BATCH`` records: replies posted, the stream's
open shard count read with DescribeStreamSummary) against a local endpoint that answers both like
AWS (``loadtest.bench_post``'s), with the variables Lambda sets (the role's keys in the
environment); next to the CPU of ``import boto3`` in a fresh interpreter, interleaved; and
whether that first batch loaded boto3.

    python -m loadtest.bench_import [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "boto3"
FIRST_BATCH = 10  # echo records in the first batch
FIRST_BATCH_STREAM = "bench-stream"

# Run in a fresh interpreter: ``echo`` (import the handler, run the batch read from stdin) or
# ``boto3`` (import it); prints the CPU ms spent and whether boto3 was loaded.
_PROBE = """
import json, sys, time
event = json.loads(sys.stdin.read() or "null")
c0 = time.process_time()
if sys.argv[1] == "echo":
    import consumers.echo.handler as handler
    failed = handler.lambda_handler(event, None)["batchItemFailures"]
else:
    import boto3
    failed = []
cpu_ms = (time.process_time() - c0) * 1000
print(json.dumps({"cpu_ms": cpu_ms, "boto3": "boto3" in sys.modules, "failed": len(failed)}))
"""


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


def _probe(what: str, env: dict[str, str], event: object = None) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, what], input=json.dumps(event),
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
                          check=True)
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["failed"]:
        raise RuntimeError(f"the {what} probe's batch failed: {proc.stderr[-500:]}")
    return out


def measure_first_batch(rounds: int = 5) -> dict[str, float]:
    """Median CPU ms of the echo handler's import + first batch, and of ``import boto3``, each
    in a fresh interpreter; ``boto3_loaded`` is 1.0 when any first batch loaded boto3."""
    if not 1 <= rounds <= 50:
        raise ValueError("rounds must be 1..50")
    from urllib.parse import urlsplit

    from loadtest.bench_post import HANDLER_ENV, Endpoint, echo_event

    samples: dict[str, list[float]] = {"echo": [], BASELINE: []}
    loaded = False
    with Endpoint() as url:
        parts = urlsplit(url)
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = {**base, **HANDLER_ENV, "PYTHONPATH": os.pathsep.join(
                   p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
               "AWS_DEFAULT_REGION": HANDLER_ENV["AWS_REGION"],
               "AWS_ENDPOINT_URL": f"{parts.scheme}://{parts.netloc}",
               "CONNECTIONS_ENDPOINT_URL": url, "STREAM_NAME": FIRST_BATCH_STREAM,
               "STREAM_SHARDS": "1"}
        event = echo_event(FIRST_BATCH, 0)
        for _ in range(rounds):
            echo = _probe("echo", env, event)
            loaded = loaded or bool(echo["boto3"])
            samples["echo"].append(echo["cpu_ms"])
            samples[BASELINE].append(_probe(BASELINE, env)["cpu_ms"])
    return {"cpu_ms": statistics.median(samples["echo"]),
            "boto3_cpu_ms": statistics.median(samples[BASELINE]),
            "boto3_loaded": float(loaded)}


def first_batch_rows(result: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """``(name, value, baseline, ratio)`` rows of :func:`measure_first_batch`."""
    ms, base = result["cpu_ms"], result["boto3_cpu_ms"]
    return [(f"cold start: echo load + first batch of {FIRST_BATCH}, CPU", f"{ms:.0f} ms",
             f"{base:.0f} ms (import boto3, CPU)", f"{ms / base:.2f}x" if base > 0 else "-"),
            ("cold start: echo first batch loads boto3",
             "yes" if result["boto3_loaded"] else "no", "", "")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_import", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    table = rows(measure(args.rounds)) + first_batch_rows(measure_first_batch(args.rounds))
    for name, value, baseline, ratio in table:
        print(f"{name:<48}{value:<12}{baseline:<32}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
