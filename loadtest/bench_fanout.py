"""Broadcast fan-out benchmark: the runtime's @connections client vs boto3, side by side.

One message to ``connections`` connections, posted (a) by ``pipeline.runtime.ConnectionsClient``
(signed keep-alive HTTP, its only path), (b) by a pool of the same number of threads calling
boto3's ``post_to_connection`` (what the runtime did before its own client) and (c) the seed
way, one ``post_to_connection`` after the other on a default boto3 client; all against the same
endpoint in the same run.

The endpoint is a minimal asyncio HTTP/1.1 server in a child process (its own GIL; a bare
``asyncio.Protocol``, because an aiohttp server tops out near 5,000 requests/s on one core here
and would measure itself) that answers ``POST /<stage>/@connections/<id>`` with 200 after
``latency_ms`` (15 ms: the order of a real in-region postToConnection round trip; 0 measures pure
client CPU), or any @connections URL given with ``--endpoint-url`` (e.g. the local twin's, whose
unknown ids answer 410: still a full round trip). Without ``--latency-ms`` both 0 and 15 ms run.

    python -m loadtest.bench_fanout [--connections 1000] [--latency-ms 15] [--endpoint-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline import DEFAULT_REGION, PROJECT_ROOT
from pipeline.runtime import ConnectionsClient, Outcome

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"
_NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nx-amzn-ErrorType: NotFoundException\r\n"
              b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
_MAX_HEAD = 64 * 1024


def _serve(latency_ms: float) -> None:
    """Child process: answer POST /<stage>/@connections/<id> with 200 after ``latency_ms``."""
    import asyncio

    delay = latency_ms / 1000

    class Endpoint(asyncio.Protocol):
        def __init__(self) -> None:
            self.buffer = b""
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                head = self.buffer[:end].decode("latin-1").split("\r\n")
                length = 0
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if len(self.buffer) < end + 4 + length:
                    return  # the body is still coming
                self.buffer = self.buffer[end + 4 + length:]
                method, _, rest = head[0].partition(" ")
                ok = method == "POST" and "/@connections/" in rest.split(" ", 1)[0]
                self.answer(_OK if ok else _NOT_FOUND)
            if len(self.buffer) > _MAX_HEAD and self.transport is not None:
                self.transport.close()  # no end of headers in 64 KB: not HTTP

        def answer(self, response: bytes) -> None:
            if delay:  # the simulated service latency (answers keep their order: same delay)
                asyncio.get_running_loop().call_later(delay, self.write, response)
            else:
                self.write(response)

        def write(self, response: bytes) -> None:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(response)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Endpoint, "127.0.0.1", 0, backlog=1024)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
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
    os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)


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

    runtime_s, answered = _broadcast(ConnectionsClient(url, workers=workers), ids, payload)
    pool_s, pool_answered = _boto3_pool(url, workers, ids, payload)

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
        "boto3PoolS": pool_s,
        "sequentialS": sequential_s,
        "runtimePostsPerS": n / runtime_s,
        "boto3PoolPostsPerS": n / pool_s,
        "sequentialPostsPerS": n / sequential_s,
        "speedup": sequential_s / runtime_s,
        "speedupVsBoto3Pool": pool_s / runtime_s,
        "boto3PoolSpeedup": sequential_s / pool_s,
        "answered": float(answered),
        "boto3PoolAnswered": float(pool_answered),
    }


def _broadcast(client: ConnectionsClient, ids: list[str], payload: bytes) -> tuple[float, int]:
    """Seconds for one ``post_many`` to every id (after a warm-up that opens the pool's
    connections, like a container that has served before) and how many were answered."""
    try:
        client.post_many([f"warm{i:011d}=" for i in range(client.workers)], payload)
        start = time.perf_counter()
        results = client.post_many(ids, payload)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    return elapsed, sum(r.outcome in (Outcome.DELIVERED, Outcome.GONE) for r in results)


def _boto3_pool(url: str, workers: int, ids: list[str], payload: bytes) -> tuple[float, int]:
    """Seconds for ``workers`` threads sharing one boto3 client (botocore's retries off) to post
    to every id, after the same warm-up, and how many were answered."""
    client = boto3.client("apigatewaymanagementapi", endpoint_url=url, config=Config(
        max_pool_connections=workers, retries={"mode": "standard", "total_max_attempts": 1}))
    with ThreadPoolExecutor(workers, thread_name_prefix="boto3-post") as pool:
        list(pool.map(lambda cid: _post(client, cid, payload),
                      [f"warm{i:011d}=" for i in range(workers)]))
        start = time.perf_counter()
        answered = sum(pool.map(lambda cid: _post(client, cid, payload), ids))
        elapsed = time.perf_counter() - start
    return elapsed, answered


def _post(client: Any, cid: str, payload: bytes) -> bool:
    """One ``post_to_connection``; whether it was answered 2xx or 410 (the twin answers 410 for
    ids it does not know: still a full round trip)."""
    try:
        client.post_to_connection(ConnectionId=cid, Data=payload)
    except client.exceptions.GoneException:
        pass
    except (ClientError, BotoCoreError):
        return False
    return True


def measure(connections: int = 1000, connections_url: str = "", **_: Any) -> dict[str, float]:
    """The ``loadtest.bench`` hook (docs/contracts.md): ``run`` under the contract's names."""
    # The twin's TWIN-READY "connections" URL ends in /@connections; boto3 wants the stage URL.
    return run(connections, endpoint_url=connections_url.removesuffix("/@connections") or None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_fanout",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, action="append",
                        help="simulated @connections latency of the local endpoint "
                             "(repeatable; default: 0 and 15)")
    parser.add_argument("--workers", type=int, default=48)
    parser.add_argument("--endpoint-url", help="an @connections URL instead of the local one")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    latencies: list[float] = args.latency_ms or [0.0, 15.0]
    if args.serve:
        _serve(latencies[0])
        return 0
    if args.endpoint_url:
        latencies = [float("nan")]
    runs = [run(args.connections, endpoint_url=args.endpoint_url, latency_ms=latency,
                workers=args.workers) for latency in latencies]
    if args.json:
        print(json.dumps(runs if len(runs) > 1 else runs[0]))
        return 0
    for latency, fig in zip(latencies, runs, strict=True):
        where = args.endpoint_url or f"local endpoint, {latency:g} ms latency"
        print(f"broadcast to {args.connections} connections ({where}):")
        for label, key in ((f"runtime client ({args.workers} workers)", "runtime"),
                           (f"boto3 post_to_connection pool ({args.workers})", "boto3Pool"),
                           ("sequential boto3 loop", "sequential")):
            print(f"  {label:<38}{fig[key + 'S'] * 1000:8.0f} ms {fig[key + 'PostsPerS']:8.0f}"
                  " posts/s")
        print(f"  runtime vs sequential {fig['speedup']:.1f}x, runtime vs boto3 pool "
              f"{fig['speedupVsBoto3Pool']:.1f}x, boto3 pool vs sequential "
              f"{fig['boto3PoolSpeedup']:.1f}x; answered {fig['answered']:.0f} (runtime), "
              f"{fig['boto3PoolAnswered']:.0f} (boto3 pool)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
