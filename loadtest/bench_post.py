"""CPU per @connections post and per echo record: the runtime's client next to boto3's, same run.

Every figure is process CPU time (``time.process_time``, all threads of this process) divided by
the posts (or records) made, and the wall-clock rate beside it. The endpoint is a bare local HTTP
server in its own process (``--serve``) that answers every ``POST .../@connections/{id}`` like
API Gateway (200, empty body, its response headers), and a Kinesis ``DescribeStreamSummary``
with a one-shard summary (the runtime's first call in a container: ``loadtest.bench_import``),
so its CPU is not counted here:

- ``post``: :class:`~pipeline.runtime.signed_http.SignedPoster` (the runtime's hot path) and
  boto3's ``apigatewaymanagementapi.post_to_connection``, one after the other (sequential), then
  the runtime's :class:`~pipeline.runtime.ConnectionsClient` and boto3's client at the reply
  pool's concurrency (``REPLY_WORKERS`` threads, one shared client each side);
- ``record``: the echo consumer's ``lambda_handler`` over Kinesis events of ``BATCH`` echo
  records (decode, envelope, handler, reply, the post): the worker's CPU per record, next to the
  runtime's sequential CPU per post of this run.

    python -m loadtest.bench_post [--posts 2000] [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from loadtest.bench import ServerProcess

READY = "POST-READY"
STAGE = "prod"
BATCH = 100
CREDENTIALS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
               "FwoGZXIvYXdzEJr//session+token==")
BODY = orjson.dumps({"action": "echo", "data": {"s": 1, "pad": "x" * 100},
                     "timing": {"gatewayMs": 1700000000123, "streamMs": 1700000000187,
                                "consumerMs": 1700000000190, "replyMs": 1700000000191}})


# --- the bare endpoint (its own process) -------------------------------------------------------
_DESCRIBE = b"x-amz-target: kinesis_20131202.describestreamsummary"
_SUMMARY = orjson.dumps({"StreamDescriptionSummary": {"OpenShardCount": 1}})


class _Endpoint(asyncio.Protocol):
    """Answers each request on a keep-alive connection like API Gateway's @connections."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0
                              else None]) if i >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            if _DESCRIBE in head:  # the runtime's DescribeStreamSummary (bench_import)
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1"
                                     b"\r\nContent-Length: %d\r\n\r\n%s"
                                     % (len(_SUMMARY), _SUMMARY))
                continue
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nDate: " + time.strftime(
                    "%a, %d %b %Y %H:%M:%S GMT", time.gmtime()).encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: 0\r\n"
                b"Connection: keep-alive\r\nx-amzn-RequestId: "
                b"2f1c5a3e-8d7b-4c1a-9e0f-3b2a1c0d9e8f\r\n"
                b"x-amz-apigw-id: AbCdEfGhIjKlMnO=\r\n\r\n")


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Endpoint, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"{READY} http://127.0.0.1:{port}/{STAGE}", flush=True)
    async with server:
        await server.serve_forever()


class Endpoint(ServerProcess):
    """``with Endpoint() as url``: the bare endpoint in a child process."""

    def __init__(self) -> None:
        super().__init__("loadtest.bench_post", READY, args=("--serve",))


# --- measurements -------------------------------------------------------------------------------
def _cpu(fn: Callable[[], int], rounds: int) -> tuple[float, float]:
    """Best-of-``rounds`` (CPU µs per item, items per wall second) of ``fn()`` -> item count."""
    best_cpu, best_rate = float("inf"), 0.0
    for _ in range(rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        n = fn()
        c1, t1 = time.process_time(), time.perf_counter()
        best_cpu = min(best_cpu, (c1 - c0) / n * 1e6)
        best_rate = max(best_rate, n / (t1 - t0))
    return best_cpu, best_rate


def _ids(n: int) -> list[str]:
    return [f"L0SM{i:010d}Iw=" for i in range(n)]


def measure_posts(url: str, posts: int, rounds: int) -> dict[str, float]:
    """CPU µs per post and posts/s: runtime and boto3, sequential and at the reply pool's width."""
    import boto3
    from botocore.config import Config
    from botocore.credentials import Credentials

    from pipeline.runtime.connections import REPLY_WORKERS, ConnectionsClient
    from pipeline.runtime.signed_http import SignedPoster

    creds = Credentials(*CREDENTIALS)
    ids = _ids(posts)
    poster = SignedPoster(url, region="us-east-1", credentials=lambda: creds)
    client = ConnectionsClient(url, workers=REPLY_WORKERS, region="us-east-1",
                               credentials=lambda: creds)
    boto = boto3.Session(aws_access_key_id=CREDENTIALS[0], aws_secret_access_key=CREDENTIALS[1],
                         aws_session_token=CREDENTIALS[2], region_name="us-east-1").client(
        "apigatewaymanagementapi", endpoint_url=url,
        config=Config(max_pool_connections=REPLY_WORKERS, retries={"max_attempts": 1}))
    boto_posts = max(100, posts // 5)  # boto3 is ~10x the CPU: fewer posts, same rounds

    def ours_seq() -> int:
        for cid in ids:
            if poster.post_once(cid, BODY)[0] != 200:
                raise RuntimeError("runtime post failed")
        return len(ids)

    def ours_pool() -> int:
        results = client.post_many(ids, BODY)
        if any(r.status != 200 for r in results):
            raise RuntimeError("runtime post failed")
        return len(results)

    def boto_seq() -> int:
        for cid in ids[:boto_posts]:
            boto.post_to_connection(ConnectionId=cid, Data=BODY)
        return boto_posts

    def boto_pool() -> int:
        with ThreadPoolExecutor(REPLY_WORKERS) as pool:
            list(pool.map(lambda cid: boto.post_to_connection(ConnectionId=cid, Data=BODY),
                          ids[:boto_posts]))
        return boto_posts

    out: dict[str, float] = {"workers": float(REPLY_WORKERS)}
    try:
        for name, fn in (("runtime_seq", ours_seq), ("boto3_seq", boto_seq),
                         ("runtime_pool", ours_pool), ("boto3_pool", boto_pool)):
            fn()  # warm: connections opened, credentials frozen, code paths loaded
            out[f"{name}_cpu_us"], out[f"{name}_per_s"] = _cpu(fn, rounds)
    finally:
        client.close()
        poster.close()
    return out


def echo_event(batch: int, seq0: int, route: str = "echo",
               action: str = "echo") -> dict[str, Any]:
    """A Lambda Kinesis event of ``batch`` echo records from ``batch`` connections (another
    route and action: the same frames, as that route's records)."""
    records = []
    for i, cid in enumerate(_ids(batch)):
        env = orjson.dumps({
            "v": 1, "routeKey": route, "eventType": "MESSAGE", "connectionId": cid,
            "requestId": f"req-{i}", "messageId": f"msg-{i}", "requestTimeEpoch": 1700000000123,
            "stage": STAGE, "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "sourceIp": "203.0.113.7", "principal": "",
            "body": orjson.dumps({"action": action, "data": {"s": i, "pad": "x" * 100}}).decode()})
        seq = str(49590338271490256608559692538361571095921575989136588898 + seq0 + i)
        records.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": cid,
                        "sequenceNumber": seq, "data": base64.b64encode(env).decode(),
                        "approximateArrivalTimestamp": 1700000000.187},
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": f"shardId-000000000000:{seq}", "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/Echo",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/Stream"})
    return {"Records": records}


HANDLER_ENV = {"AWS_ACCESS_KEY_ID": CREDENTIALS[0],
               "AWS_SECRET_ACCESS_KEY": CREDENTIALS[1], "AWS_SESSION_TOKEN": CREDENTIALS[2],
               "AWS_REGION": "us-east-1", "POWERTOOLS_METRICS_NAMESPACE": "bench",
               "POWERTOOLS_LOG_LEVEL": "WARNING"}


@contextlib.contextmanager
def handler_environment(url: str) -> Iterator[None]:
    """The variables a consumer's Lambda has (its @connections endpoint ``url``), then restored."""
    env = {**HANDLER_ENV, "CONNECTIONS_ENDPOINT_URL": url}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def measure_records(url: str, batches: int, rounds: int) -> dict[str, float]:
    """The echo consumer's ``lambda_handler``: CPU µs per record and records/s (batch 100)."""
    import importlib

    with handler_environment(url):
        handler = importlib.import_module("consumers.echo.handler").lambda_handler
        events = [echo_event(BATCH, b * BATCH) for b in range(batches)]

        def run() -> int:
            for ev in events:
                response = handler(ev, None)
                if response["batchItemFailures"]:
                    raise RuntimeError(f"echo batch failed: {response}")
            return batches * BATCH

        # The metrics (EMF lines) go where Lambda sends them, a file: written, not shown.
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            run()
            cpu, rate = _cpu(run, rounds)
    return {"cpu_us": cpu, "per_s": rate}


def measure(posts: int = 2000, batches: int = 10, rounds: int = 3) -> dict[str, float]:
    """Every figure of this module, against one bare endpoint started for the run."""
    if not 10 <= posts <= 1_000_000 or not 1 <= rounds <= 20 or not 1 <= batches <= 1000:
        raise ValueError("posts 10..1000000, batches 1..1000, rounds 1..20")
    with Endpoint() as url:
        result = measure_posts(url, posts, rounds)
        for key, value in measure_records(url, batches, rounds).items():
            result[f"echo_record_{key}"] = value
    return result


def rows(result: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """``(name, value, baseline, ratio)`` rows for ``loadtest.bench``'s table."""
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.1f}x" if b > 0 else "-"

    w = int(result["workers"])
    out = []
    for key, label in (("seq", "sequential"), ("pool", f"{w} threads (reply pool)")):
        ours, boto = result[f"runtime_{key}_cpu_us"], result[f"boto3_{key}_cpu_us"]
        out.append((f"@connections post CPU per post, {label}", f"{ours:.0f} µs (runtime)",
                    f"{boto:.0f} µs (boto3)", f"{ratio(boto, ours)} less CPU"))
        ours_r, boto_r = result[f"runtime_{key}_per_s"], result[f"boto3_{key}_per_s"]
        out.append((f"@connections requests/s, {label}", f"{ours_r:,.0f} posts/s (runtime)",
                    f"{boto_r:,.0f} posts/s (boto3)", ratio(ours_r, boto_r)))
    rec = result["echo_record_cpu_us"]
    out.append((f"echo worker CPU per record (batch {BATCH}, bare endpoint)",
                f"{rec:.0f} µs ({result['echo_record_per_s']:,.0f} rec/s)",
                f"{result['runtime_seq_cpu_us']:.0f} µs per post (runtime, seq)",
                ratio(rec, result["runtime_seq_cpu_us"])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_post", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=10, help=f"echo batches of {BATCH}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve())
        return 0
    from loadtest.machine import describe, machine

    result = measure(args.posts, args.batches, args.rounds)
    print(f"machine: {describe(machine())}; CPU = process time / items, best of {args.rounds}")
    for name, value, baseline, r in rows(result):
        print(f"{name:<58}{value:<28}{baseline:<34}{r}")
    if args.json:
        args.json.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
