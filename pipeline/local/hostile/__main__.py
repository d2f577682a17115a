"""`python -m pipeline.local.hostile [--url ws://...]`: the hostile-input run, printed as a table.

Without ``--url`` it starts its own twin (``python -m pipeline local --port 0 --aws-port 0``),
waits for its TWIN-READY line and stops it at the end. Exit status: 0 when every case got its
documented answer and valid frames are still answered afterwards; 1 when the twin died or a
valid frame went unanswered; 2 when the pipeline is healthy but some case got another answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from pipeline.local.hostile import cases, runner

TWIN_START_TIMEOUT_S = 180.0  # includes `cdk synth` (~10-15 s here) unless --no-synth
TWIN_STOP_TIMEOUT_S = 20.0


class TwinProcess:
    """A twin subprocess: started, its output drained, stopped with SIGTERM."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output: list[str] = []
        self.urls: dict[str, str] = {}
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, extra: list[str]) -> TwinProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline", "local", "--port", "0", "--aws-port", "0",
            "--function-logs", "-", *extra,  # inline: the run checks them for tracebacks
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        twin = cls(proc)
        try:
            await asyncio.wait_for(twin._ready(), TWIN_START_TIMEOUT_S)
        except (TimeoutError, RuntimeError):
            await twin.stop()
            raise
        twin._drain = asyncio.ensure_future(twin._pump())
        return twin

    async def _ready(self) -> None:
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode(errors="replace"):
            self.output.append(line)
            if line.startswith("TWIN-READY "):
                self.urls = orjson.loads(line.split(" ", 1)[1])
                return
        raise RuntimeError("the twin exited before it was ready:\n" + "".join(self.output))

    async def _pump(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line.decode(errors="replace"))

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def stop(self) -> int:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), TWIN_STOP_TIMEOUT_S)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._drain, 5)
        return self.process.returncode or 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.local.hostile",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="WebSocket URL to attack (default: start a twin)")
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
        tracebacks = sum("Traceback" in line for line in twin.output[log_start:])
        print(f"- twin process: {'running' if twin.alive else 'EXITED'}, "
              f"{tracebacks} tracebacks in its log during the run")
        healthy = healthy and twin.alive and not tracebacks
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
    extra = ["--no-synth"] if args.no_synth else []
    if args.assembly is not None:
        extra += ["--assembly", str(args.assembly)]
    print("starting the twin: python -m pipeline local --port 0 --aws-port 0 " + " ".join(extra),
          flush=True)
    try:
        twin = await TwinProcess.start(extra)
    except (TimeoutError, RuntimeError) as exc:
        print(f"the twin did not start: {exc}", file=sys.stderr)
        return 1
    print(f"twin ready at {twin.urls['ws']}\n", flush=True)
    try:
        return await attack(twin.urls["ws"], args.concurrency, twin,
                            args.aws_endpoint or twin.urls["aws"])
    finally:
        code = await twin.stop()
        print(f"twin stopped (exit {code})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.concurrency < 1:
        print("--concurrency must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
