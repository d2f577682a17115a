"""Broadcast fan-out benchmark: the runtime's @connections client vs a sequential boto3 loop.

One message to ``connections`` connections, posted (a) by ``pipeline.runtime.ConnectionsClient``
(thread pool, pooled keep-alive connections) and (b) the seed way, one ``post_to_connection``
after the other on a default boto3 client; both against the same endpoint in the same run.

The endpoint is a minimal aiohttp server in a child process (so it does not share this
process's GIL) that answers like @connections after ``latency_ms`` (default 15 ms: the order of a
real in-region postToConnection round trip; 0 measures pure client CPU), or any @connections URL
given with ``--endpoint-url`` (e.g. the local twin's, whose unknown ids answer 410: still a post).

    python -m loadtest.bench_fanout [--connections 1000] [--latency-ms 15] [--endpoint-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from pipeline.runtime import ConnectionsClient, Outcome

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _serve(latency_ms: float) -> None:
    """Child process: answer POST /<stage>/@connections/<id> with 200 after ``latency_ms``."""
    import asyncio

    from aiohttp import web

    async def post(request: web.Request) -> web.Response:
        await request.read()
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)  # the simulated service latency
        return web.Response(status=200)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{stage}/@connections/{cid}", post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()  # until the parent terminates this process

    asyncio.run(main())


@contextmanager
def local_endpoint(latency_ms: float) -> Iterator[str]:
    """A local @connections-like endpoint in a child process; yields its URL (stage ``dev``).

    A separate process, so the server does not compete for this process's GIL.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.bench_fanout", "--serve", "--latency-ms", str(latency_ms)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the child prints its port or exits
        if not line.startswith("PORT "):
            raise RuntimeError(f"the local endpoint did not start (exit {proc.poll()})")
        yield f"http://127.0.0.1:{int(line.split()[1])}/dev"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _credentials() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def run(
    n_connections: int = 1000,
    *,
    endpoint_url: str | None = None,
    latency_ms: float = 15.0,
    workers: int = 48,
) -> dict[str, float]:
    """Measure both ways once each; returns seconds, posts/s, their ratio and the outcomes."""
    if not 1 <= n_connections <= 100_000:
        raise ValueError("n_connections must be 1..100000")
    _credentials()
    if endpoint_url:
        endpoint_url = endpoint_url.rstrip("/").removesuffix("/@connections")
        return _measure(endpoint_url, n_connections, workers, latency_ms=float("nan"))
    with local_endpoint(latency_ms) as url:
        return _measure(url, n_connections, workers, latency_ms)


def _measure(url: str, n: int, workers: int, latency_ms: float) -> dict[str, float]:
    ids = [f"bench{i:010d}=" for i in range(n)]  # 16 chars, like a real connection id
    payload = json.dumps({"action": "broadcast", "room": "bench", "data": "x" * 100}).encode()

    runtime = ConnectionsClient(url, workers=workers)
    runtime.post_many(ids[:workers], payload)  # warm the pool and its connections, like a
    start = time.perf_counter()                # container that has served before
    results = runtime.post_many(ids, payload)
    runtime_s = time.perf_counter() - start
    runtime.close()
    answered = sum(r.outcome in (Outcome.DELIVERED, Outcome.GONE) for r in results)

    seed = boto3.client("apigatewaymanagementapi", endpoint_url=url)
    _post(seed, ids[0], payload)
    start = time.perf_counter()
    for cid in ids:
        _post(seed, cid, payload)
    sequential_s = time.perf_counter() - start

    return {
        "connections": float(n),
        "latencyMs": latency_ms,
        "workers": float(workers),
        "runtimeS": runtime_s,
        "sequentialS": sequential_s,
        "runtimePostsPerS": n / runtime_s,
        "sequentialPostsPerS": n / sequential_s,
        "speedup": sequential_s / runtime_s,
        "answered": float(answered),
    }


def _post(client: Any, cid: str, payload: bytes) -> None:
    # The twin answers 410 for ids it does not know: still a full round trip.
    with contextlib.suppress(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=cid, Data=payload)


def measure(connections: int = 1000, connections_url: str = "", **_: Any) -> dict[str, float]:
    """The ``loadtest.bench`` hook (docs/contracts.md): ``run`` under the contract's names."""
    # The twin's TWIN-READY "connections" URL ends in /@connections; boto3 wants the stage URL.
    return run(connections, endpoint_url=connections_url.removesuffix("/@connections") or None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_fanout",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=15.0,
                        help="simulated @connections latency of the local endpoint")
    parser.add_argument("--workers", type=int, default=48)
    parser.add_argument("--endpoint-url", help="an @connections URL instead of the local one")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.latency_ms)
        return 0
    figures = run(args.connections, endpoint_url=args.endpoint_url,
                  latency_ms=args.latency_ms, workers=args.workers)
    if args.json:
        print(json.dumps(figures))
        return 0
    where = args.endpoint_url or f"local endpoint, {args.latency_ms:g} ms latency"
    print(f"broadcast to {args.connections} connections ({where}):")
    print(f"  runtime client ({args.workers} workers): {figures['runtimeS'] * 1000:8.0f} ms  "
          f"{figures['runtimePostsPerS']:8.0f} posts/s")
    print(f"  sequential boto3 loop:         {figures['sequentialS'] * 1000:8.0f} ms  "
          f"{figures['sequentialPostsPerS']:8.0f} posts/s")
    print(f"  ratio: {figures['speedup']:.1f}x   answered: {figures['answered']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
