"""Broadcast at scale: one room of N real WebSocket connections on the twin, through the fan-out tier.

``python -m loadtest --scenario broadcast --room-size 10000`` (or ``python -m loadtest.bench_broadcast``).

1. **Capacity.** A twin (``--connections-latency-ms 15``, no @connections rate limit) with
   ``--capacity-connections`` clients; a child process posts to all of them as fast as the
   runtime's client can (96 threads), ``--capacity-rounds`` times: the twin's measured
   @connections capacity C (posts/s, delivered to real sockets).
2. **The limit.** ``connectionsRps`` is set so the fan-out function's share R is
   ``--limit-fraction`` of C (R < C: the run is bound by the rate limit, not by the twin).
3. **Broadcast.** A twin synthesized with that context, N clients in one room, a warm-up
   broadcast to a small room (so every fan-out lane has a warm worker, as Lambda keeps them),
   then ``--messages`` broadcasts published back to back. Each client records what it receives.

Reported: time from the first publish to the last delivery T, the quota-bound time
K x N / R, efficiency = (K x N / R) / T (goal >= 70 %), lost deliveries, members whose
broadcasts arrived out of order, and the per-page figures (pages, recipients per page, seconds
per page) that docs/loadtest/README.md extrapolates to 100,000 members and 10 shards.
The room is joined by writing the roster's membership items (docs/contracts.md "Roster table")
straight to the twin's DynamoDB: the join path is not what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import orjson
from websockets.asyncio.client import ClientConnection, connect

from pipeline.aws.limits import REGION
from pipeline.local.harness import Twin, launch_twin, stop_twin
from pipeline.registry import load_all

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LATENCY_MS = 15.0
CONNECT_CONCURRENCY = 200
NEW_CONNECTIONS_PER_SECOND = 2000  # the account quota (500) is adjustable; setup time only
WARM_ROOM_SIZE = 200
RECEIVE_TIMEOUT_S = 300.0
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_REGION": REGION}


@dataclass
class Member:
    """One client: its socket and what it received (time, message number) of the room."""

    ws: ClientConnection
    got: list[tuple[float, int]] = field(default_factory=list)
    other: int = 0


def raise_fd_limit() -> int:
    """Soft fd limit up to the hard one (10,000 sockets need it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def synth(outdir: Path, context: dict[str, str]) -> Path:
    """The dev stack synthesized with ``context`` (in a child process: jsii is heavy)."""
    code = ("import sys, json; from pathlib import Path; "
            "from pipeline.infrastructure.synth import synthesize; "
            "synthesize(Path(sys.argv[1]), json.loads(sys.argv[2]))")
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           "CDK_DISABLE_CLI_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-c", code, str(outdir),
                           json.dumps({"stage": "dev", **context})],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"synth failed:\n{done.stderr[-3000:]}")
    return outdir


def start(assembly: Path, logs: Path, rps: int) -> Twin:
    return launch_twin(["--no-synth", "--assembly", str(assembly), "--port", "0",
                        "--aws-port", "0", "--connections-latency-ms", f"{LATENCY_MS:g}",
                        "--connections-rps", str(rps),
                        "--new-connections-per-second", str(NEW_CONNECTIONS_PER_SECOND),
                        "--no-iam",  # SigV4 + policy evaluation per post is not what is measured
                        "--function-logs", str(logs)], timeout=240)


async def open_members(url: str, n: int) -> list[Member]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> Member:
        async with gate:
            for attempt in range(20):  # a refused connect (429 quota) is retried, bounded
                try:
                    ws = await connect(url, ping_interval=None, compression=None,
                                       open_timeout=60, max_queue=None)
                    return Member(ws)
                except Exception:
                    await asyncio.sleep(0.05 * 2 ** min(attempt, 5))
            raise SystemExit("could not open a connection after 20 attempts")

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def receive(member: Member) -> None:
    """Record the room's broadcasts (``data.n``) as they arrive; ends when the socket closes."""
    try:
        async for raw in member.ws:
            msg = orjson.loads(raw)
            data = msg.get("data") if isinstance(msg, dict) else None
            if msg.get("action") == "broadcast" and isinstance(data, dict) and "n" in data:
                member.got.append((time.monotonic(), int(data["n"])))
            else:
                member.other += 1
    except Exception:
        return


def roster_ids(aws: str) -> list[str]:
    """The connection ids of the twin's roster (META items: only this run's clients)."""
    ddb = _ddb(aws)
    table = ddb.list_tables()["TableNames"][0]
    ids: list[str] = []
    for page in ddb.get_paginator("scan").paginate(
            TableName=table, FilterExpression="sk = :m",
            ExpressionAttributeValues={":m": {"S": "META"}}):
        ids.extend(item["connectionId"]["S"] for item in page["Items"])
    return ids


def join(aws: str, room: str, ids: Sequence[str]) -> None:
    """Both membership items of each id (the roster contract), 25 per BatchWriteItem."""
    ddb = _ddb(aws)
    table = ddb.list_tables()["TableNames"][0]
    now = int(time.time())
    items = []
    for cid in ids:
        attrs = {"room": {"S": room}, "connectionId": {"S": cid}, "principal": {"S": ""},
                 "joinedAt": {"N": str(now * 1000)}, "expiresAt": {"N": str(now + 10800)}}
        items.append({"pk": {"S": f"CONN#{cid}"}, "sk": {"S": f"ROOM#{room}"}, **attrs})
        items.append({"pk": {"S": f"ROOM#{room}"}, "sk": {"S": f"CONN#{cid}"}, **attrs})
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]
        for _ in range(10):  # bounded: the twin's DynamoDB processes everything at once
            left = ddb.batch_write_item(RequestItems={table: requests}).get(
                "UnprocessedItems", {}).get(table, [])
            if not left:
                break
            requests = left


def _ddb(aws: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=aws, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def capacity_child(connections_url: str, ids_file: str, rounds: int) -> None:
    """Child process: post to every id ``rounds`` times, unlimited; prints posts/s as JSON."""
    from pipeline.runtime import ConnectionsClient

    ids = json.loads(Path(ids_file).read_text())
    client = ConnectionsClient(connections_url, workers=96, region=REGION)
    payload = orjson.dumps({"action": "capacity"})
    client.post_many(ids[:96], payload)  # open the keep-alive connections
    started = time.perf_counter()
    ok = 0
    for _ in range(rounds):
        ok += sum(r.outcome == "delivered" for r in client.post_many(ids, payload))
    elapsed = time.perf_counter() - started
    client.close()
    print(json.dumps({"posts": rounds * len(ids), "delivered": ok, "seconds": elapsed}))


async def post_capacity(twin: Twin, ids: Sequence[str], rounds: int) -> dict[str, float]:
    """The twin's @connections capacity: a child process posts to every id ``rounds`` times."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(list(ids), f)
    connections_url = twin.connections.rsplit("/@connections", 1)[0]
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-c",
        "import sys; from loadtest.bench_broadcast import capacity_child; "
        "capacity_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))",
        connections_url, f.name, str(rounds)], cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=600, env={**os.environ, **TEST_CREDENTIALS})
    os.unlink(f.name)
    if done.returncode != 0:
        raise SystemExit(f"capacity run failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["rate"] = result["delivered"] / result["seconds"]
    return result


async def measure_capacity(assembly: Path, logs: Path, n: int, rounds: int) -> dict[str, float]:
    twin = start(assembly, logs, rps=0)
    readers: list[asyncio.Future[None]] = []
    try:
        members = await open_members(twin.ws, n)
        readers = [asyncio.ensure_future(receive(m)) for m in members]
        return await post_capacity(twin, roster_ids(twin.aws), rounds)
    finally:
        await asyncio.to_thread(_stop, twin)  # closes every client (1001): readers end
        await asyncio.gather(*readers)


def _stop(twin: Twin) -> None:
    """Stop the twin; one that takes longer than 20 s (10,000 clients to close) is killed."""
    with contextlib.suppress(subprocess.TimeoutExpired):  # stop_twin killed it
        stop_twin(twin)


def fanout_share(connections_rps: int) -> float:
    """The fan-out function's total share of ``connectionsRps`` (the stack's split)."""
    specs = load_all()
    total = sum(s.connections_rps_weight for s in specs)
    tier = next(s for s in specs if "fanout" in s.server_route_keys)
    return connections_rps * tier.connections_rps_weight / total


def connections_rps_for(fanout_rate: float) -> int:
    return math.ceil(fanout_rate / fanout_share(1))


async def wait_for(members: Sequence[Member], count: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if all(len(m.got) >= count for m in members):
            return
        await asyncio.sleep(0.1)  # polling the clients' own records, bounded by the deadline


async def broadcast_run(assembly: Path, logs: Path, n: int, messages: int) -> dict[str, Any]:
    from pipeline.publish import publish

    twin = start(assembly, logs, rps=10_000)
    readers: list[asyncio.Future[None]] = []
    try:
        t0 = time.monotonic()
        members = await open_members(twin.ws, n)
        readers = [asyncio.ensure_future(receive(m)) for m in members]
        opened_s = time.monotonic() - t0
        ids = roster_ids(twin.aws)
        await asyncio.to_thread(join, twin.aws, "big", ids)
        await asyncio.to_thread(join, twin.aws, "warm", ids[:WARM_ROOM_SIZE])
        # Warm every fan-out lane (Lambda keeps warm containers; the twin starts them lazily).
        await asyncio.to_thread(publish, "warm", {"n": -1}, endpoint_url=twin.aws)
        warm_deadline = time.monotonic() + 120
        while time.monotonic() < warm_deadline:
            if sum(len(m.got) for m in members) >= WARM_ROOM_SIZE:
                break
            await asyncio.sleep(0.1)
        for m in members:
            m.got.clear()
        started = time.monotonic()
        for k in range(messages):
            await asyncio.to_thread(publish, "big", {"n": k}, endpoint_url=twin.aws)
        await wait_for(members, messages, started + RECEIVE_TIMEOUT_S)
        received = sum(len(m.got) for m in members)
        last = max((t for m in members for t, _ in m.got), default=started)
        firsts = [m.got[0][0] for m in members if m.got]
        out_of_order = sum(1 for m in members if [n_ for _, n_ in m.got] != sorted(
            n_ for _, n_ in m.got))
        duplicates = sum(len(m.got) - len({n_ for _, n_ in m.got}) for m in members)
        # The same twin, the same 10,000 sockets: its capacity now (the limit must be below it).
        after = await post_capacity(twin, ids, 1)
        return {"capacity_after": after["rate"],"members": len(members), "opened_s": opened_s, "messages": messages,
                "expected": messages * len(members), "received": received,
                "lost": messages * len(members) - (received - duplicates),
                "duplicates": duplicates, "out_of_order": out_of_order,
                "first_delivery_s": (min(firsts) - started) if firsts else None,
                "last_delivery_s": last - started}
    finally:
        await asyncio.to_thread(_stop, twin)  # closes every client (1001): readers end
        await asyncio.gather(*readers)


def page_figures(logs: Path) -> dict[str, Any]:
    """The fan-out consumer's pages from its log (one 'broadcast' line per published message)."""
    pages = recipients = 0
    lines = [line for path in sorted(logs.glob("*broadcast*.log"))
             for line in path.read_text(errors="replace").splitlines()]
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("message") == "broadcast" and doc.get("room") == "big":
            pages += int(doc.get("pages", 0))
            recipients += int(doc.get("recipients", 0))
    return {"pages": pages, "recipients": recipients}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fds = raise_fd_limit()
    if fds < args.room_size + 1000:
        raise SystemExit(f"the fd limit is {fds}: {args.room_size} connections need more")
    work = Path(tempfile.mkdtemp(prefix="bench-broadcast-"))
    print(f"synthesizing (default context) into {work}/a ...", flush=True)
    base = synth(work / "a", {})
    print(f"capacity: {args.capacity_connections} clients x {args.capacity_rounds} rounds, "
          f"unlimited, {LATENCY_MS:g} ms per call ...", flush=True)
    cap = await measure_capacity(base, work / "logs-a", args.capacity_connections,
                                 args.capacity_rounds)
    print(f"  twin @connections capacity: {cap['rate']:,.0f} posts/s", flush=True)
    fanout_rate = cap["rate"] * args.limit_fraction
    rps = connections_rps_for(fanout_rate)
    share = fanout_share(rps)
    print(f"limit: connectionsRps={rps} -> fan-out share {share:,.0f} posts/s "
          f"({share / cap['rate']:.0%} of capacity); synthesizing ...", flush=True)
    limited = synth(work / "b", {"connectionsRps": str(rps)})
    print(f"broadcast: {args.room_size} clients in one room, {args.messages} messages ...",
          flush=True)
    result = await broadcast_run(limited, work / "logs-b", args.room_size, args.messages)
    ideal = result["expected"] / share
    result.update(capacity=cap["rate"], connections_rps=rps, fanout_share=share,
                  quota_bound_s=ideal, efficiency=ideal / result["last_delivery_s"],
                  **page_figures(work / "logs-b"))
    # A lane posts its pages one after the other: the posting phase over the pages per lane.
    posting = result["last_delivery_s"] - (result["first_delivery_s"] or 0.0)
    result["lanes"] = _lanes()
    result["seconds_per_page"] = posting * result["lanes"] / max(1, result["pages"])
    return result


def _lanes() -> int:
    specs = {s.name: s for s in load_all()}
    from pipeline.infrastructure.config import PipelineConfig

    return PipelineConfig().shards * specs["fanout"].parallelization_factor


def format_result(r: dict[str, Any]) -> str:
    return "\n".join([
        f"room of {r['members']:,} real WebSocket connections, {r['messages']} broadcasts "
        f"({r['expected']:,} deliveries), @connections {LATENCY_MS:g} ms per call",
        f"twin @connections capacity (measured)  {r['capacity']:,.0f} posts/s before, "
        f"{r['capacity_after']:,.0f} posts/s on the broadcast's twin after it",
        f"fan-out share of connectionsRps={r['connections_rps']}  {r['fanout_share']:,.0f} posts/s",
        f"time to last delivery                 {r['last_delivery_s']:.2f} s "
        f"(first {r['first_delivery_s']:.2f} s)",
        f"quota-bound time K x N / rate         {r['quota_bound_s']:.2f} s",
        f"efficiency                            {r['efficiency']:.0%}  (goal >= 70 %)",
        f"lost / duplicates / out of order      {r['lost']} / {r['duplicates']} / "
        f"{r['out_of_order']}",
        f"pages written                         {r['pages']} "
        f"({r['recipients'] / max(1, r['pages']):.0f} recipients each, {r['lanes']} lanes, "
        f"{r['seconds_per_page']:.2f} s per page per lane)",
    ])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest --scenario broadcast",
                                description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--scenario", default="broadcast", choices=["broadcast"])
    p.add_argument("--room-size", type=int, default=10_000)
    p.add_argument("--messages", type=int, default=2, help="broadcasts back to back (order)")
    p.add_argument("--capacity-connections", type=int, default=1000)
    p.add_argument("--capacity-rounds", type=int, default=3)
    p.add_argument("--limit-fraction", type=float, default=0.5,
                   help="the fan-out share as a fraction of the measured capacity (< 1)")
    p.add_argument("--json", type=Path, help="write the figures here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 2 <= args.room_size <= 15_000 or not 1 <= args.messages <= 10:
        print("--room-size must be 2..15000 and --messages 1..10", file=sys.stderr)
        return 2
    if not 0.05 <= args.limit_fraction < 1:
        print("--limit-fraction must be in [0.05, 1)", file=sys.stderr)
        return 2
    result = asyncio.run(run(args))
    print(format_result(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if result["lost"] or result["out_of_order"] else 0


if __name__ == "__main__":
    sys.exit(main())
