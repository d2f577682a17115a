"""`python -m loadtest.hostile [--url ws://...]`: the hostile-input run, printed as a table.

Without ``--url`` it attacks the twin already running on 127.0.0.1:8080 (``make local``), as
``make loadtest`` does; when none runs (or with ``--new-twin``) it starts its own
(``python -m pipeline local --port 0 --aws-port 0``), waits for its TWIN-READY line and stops it
at the end. Exit status: 0 when every case got its
documented answer and valid frames are still answered afterwards; 1 when the twin died or a
valid frame went unanswered; 2 when the pipeline is healthy but some case got another answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from loadtest.hostile import cases, runner
from pipeline.local.harness import (
    DEFAULT_PORT,
    OUTPUT_LINES,
    TwinProcess,
    TwinStartError,
    launch_twin,
    running_twin,
    stop_twin,
)

TWIN_START_TIMEOUT_S = 180.0  # includes `cdk synth` (~10-15 s here) unless --no-synth


async def start_twin(extra: list[str]) -> TwinProcess:
    """The twin this run attacks, on free ports; its functions' logs inline, where the run
    looks for tracebacks."""
    return await asyncio.to_thread(
        launch_twin, ["--port", "0", "--aws-port", "0", "--function-logs", "-", *extra],
        timeout=TWIN_START_TIMEOUT_S)


async def stop(twin: TwinProcess) -> int:
    with contextlib.suppress(subprocess.TimeoutExpired):  # killed after 20 s
        await asyncio.to_thread(stop_twin, twin)
    return twin.process.returncode or 0


def alive(twin: TwinProcess) -> bool:
    return twin.process.poll() is None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.hostile",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="WebSocket URL to attack (default: the twin running on "
                        f"127.0.0.1:{DEFAULT_PORT}, else one started for this run)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port of the running twin to use (default {DEFAULT_PORT})")
    parser.add_argument("--new-twin", action="store_true",
                        help="start a twin for this run even when one is running")
    parser.add_argument("--no-synth", action="store_true",
                        help="the started twin uses the existing assembly (no `cdk synth`)")
    parser.add_argument("--assembly", type=Path, help="cloud assembly for the started twin")
    parser.add_argument("--aws-endpoint",
                        help="the twin's AWS endpoint, to check that no record reached an "
                             "on-failure queue (default: the started twin's)")
    parser.add_argument("--concurrency", type=int, default=runner.CONCURRENCY,
                        help=f"connections at a time (default {runner.CONCURRENCY})")
    return parser.parse_args(argv)


async def attack(url: str, concurrency: int, twin: TwinProcess | None,
                 aws_endpoint: str | None = None) -> int:
    """Run every case against *url*, print the table and the liveness checks; the exit status."""
    started = time.monotonic()
    before = (await asyncio.to_thread(runner.failure_queue_depths, aws_endpoint)
              if aws_endpoint else {})
    log_start = len(twin.output) if twin else 0
    results = await runner.run_cases(url, cases.build(), concurrency)
    print(runner.table(results), flush=True)
    checks = await runner.liveness(url)
    elapsed = time.monotonic() - started
    print("\nAfterwards, valid frames on fresh connections:")
    for name, problem in checks:
        print(f"- {name}: {'answered' if not problem else 'FAILED: ' + problem}")
    healthy = all(not problem for _, problem in checks)
    if aws_endpoint:
        after = await asyncio.to_thread(runner.failure_queue_depths, aws_endpoint)
        failed = {q: n - before.get(q, 0) for q, n in after.items() if n > before.get(q, 0)}
        print(f"- on-failure queues ({len(after)}): "
              + (f"RECORDS FAILED: {failed}" if failed else "no record failed"))
        healthy = healthy and not failed
    if twin is not None:
        lines = list(twin.output)
        # a full output buffer has shifted: then every line it still holds is checked
        during = lines[log_start:] if len(lines) < OUTPUT_LINES else lines
        tracebacks = sum("Traceback" in line for line in during)
        print(f"- twin process: {'running' if alive(twin) else 'EXITED'}, "
              f"{tracebacks} tracebacks in its log during the run")
        healthy = healthy and alive(twin) and not tracebacks
    deviations = [r for r in results if not r.ok]
    print(f"\n{len(results)} cases in {elapsed:.1f} s: {len(results) - len(deviations)} got the "
          f"documented answer, {len(deviations)} did not; pipeline "
          f"{'healthy' if healthy else 'NOT healthy'} afterwards.", flush=True)
    if not healthy:
        return 1
    return 2 if deviations else 0


async def main_async(args: argparse.Namespace) -> int:
    if args.url:
        parts = urlsplit(args.url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            print(f"--url must be a ws:// or wss:// URL, got {args.url!r}", file=sys.stderr)
            return 2
        return await attack(args.url, args.concurrency, None, args.aws_endpoint)
    running = None
    if not (args.new_twin or args.no_synth or args.assembly is not None):
        running = await asyncio.to_thread(running_twin, port=args.port)
    if running is not None:
        ws, aws = running
        print(f"using the twin already running at {ws} (--new-twin starts a separate one; its "
              "log is not checked for tracebacks here)\n", flush=True)
        return await attack(ws, args.concurrency, None, args.aws_endpoint or aws)
    extra = ["--no-synth"] if args.no_synth else []
    if args.assembly is not None:
        extra += ["--assembly", str(args.assembly)]
    print("starting the twin: python -m pipeline local --port 0 --aws-port 0 " + " ".join(extra),
          flush=True)
    try:
        twin = await start_twin(extra)
    except TwinStartError as exc:
        print(f"the twin did not start: {exc}", file=sys.stderr)
        return 1
    print(f"twin ready at {twin.ws}\n", flush=True)
    try:
        return await attack(twin.ws, args.concurrency, twin, args.aws_endpoint or twin.aws)
    finally:
        code = await stop(twin)
        print(f"twin stopped (exit {code})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.concurrency < 1:
        print("--concurrency must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
