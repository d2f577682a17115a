"""Join storms of two room sizes in one run: does join -> ``joined`` stay flat as the room grows?

``python -m loadtest.bench_join_storm [--sizes 10 1000] [--ramp R] [--json-dir DIR]``

Starts one twin as the chat figures are measured (``-c auth=jwt --connections-latency-ms 15``,
free ports, its own assembly and issuer), then runs ``python -m loadtest --scenario join-storm``
for each room size in turn against it (a new room each time; connections carry a token the
twin's issuer minted), and prints each run's figures and the ratio of each larger room's
join -> joined p99 to the smallest room's (the goal: within 2x). Both come from the same twin
minutes apart (after one unrecorded warm-up storm), so the ratio holds for this machine at this
moment; the load average is printed with each run (a shared box drifts). ``--sizes 10 1000 10``
brackets the large room with two small ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtest.config import NEW_CONNECTIONS_PER_S, parse_run_args
from loadtest.join_storm import failed, run_join_storm
from loadtest.proc_cpu import TreeCpu, process_cpu
from loadtest.report import Report, format_summary
from pipeline.local.harness import TwinProcess, launch_twin, stop_twin

LATENCY_MS = 15.0
TWIN_TIMEOUT_S = 300.0
WARMUP_ROOM = 20
DRAIN_TIMEOUT_S = 600.0
DRAIN_POLL_S = 0.5


def start(work: Path) -> TwinProcess:
    env = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK_DISABLE_CLI_TELEMETRY": "true"}
    os.environ.update(env)  # the twin's synth inherits them
    return launch_twin(["--port", "0", "--aws-port", "0", "-c", "auth=jwt",
                        "--connections-latency-ms", f"{LATENCY_MS:g}",
                        "--assembly", str(work / "cdk.out"), "--oidc-dir", str(work / "oidc"),
                        "--function-logs", str(work / "logs")], timeout=TWIN_TIMEOUT_S)


def token(work: Path) -> str:
    from pipeline.local.oidc import TwinIssuer

    return TwinIssuer.load(work / "oidc").mint("join-storm", 3600)


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


async def storm(twin: TwinProcess, size: int, ramp: float, tok: str,
                json_path: Path | None) -> Report:
    cfg = parse_run_args(["--scenario", "join-storm", "--room-size", str(size),
                          "--ramp", f"{ramp:g}", "--url", twin.ws, "--aws-endpoint", twin.aws,
                          "--query", f"token={tok}", "--connect-timeout", "60"])
    before = load()
    cpu_before, t0, own0 = TreeCpu.sample(twin.process.pid), time.perf_counter(), time.process_time()
    samples: list[tuple[float, float]] = []
    sampler = asyncio.create_task(sample_cpu(twin.process.pid, samples))
    try:
        report = await run_join_storm(cfg, twin.ws, twin.aws, out=io.StringIO())
    finally:
        sampler.cancel()
    report.meta["loadAverage"] = {"before": before, "after": load(), "bench": "bench_join_storm"}
    cpu_after, took = TreeCpu.sample(twin.process.pid), time.perf_counter() - t0
    client_s = time.process_time() - own0  # this process: the load generator's connections
    if cpu_before is not None and cpu_after is not None:
        report.meta["twinCpu"] = {**twin_cpu(cpu_after.since(cpu_before), size, took),
                                  "serverPeakBusy": peak_busy(samples),
                                  "clientMsPerMember": round(1000 * client_s / size, 3)}
    if json_path is not None:
        report.write(json_path)
    return report


def twin_cpu(spent: tuple[float, float], members: int, took_s: float) -> dict[str, float]:
    """The twin's CPU over one storm (connects, joins, the broadcast), per member: its own
    process (gateway, VTL, Kinesis, moto, the AWS port: one interpreter, so one core at most)
    and its function workers, and how busy its process was over the storm's wall time. A
    process near 100 % of one core is saturated: members then wait in its queues, and the
    join p99 grows with the room however fast each step is alone."""
    server_s, functions_s = spent
    return {"serverMsPerMember": round(1000 * server_s / members, 3),
            "functionsMsPerMember": round(1000 * functions_s / members, 3),
            "serverBusy": round(server_s / took_s, 3) if took_s > 0 else 0.0,
            "wallS": round(took_s, 2)}


CPU_SAMPLE_S = 0.25
PACE_MEMBERS = 100
PEAK_WINDOW_S = 1.0


async def sample_cpu(pid: int, out: list[tuple[float, float]]) -> None:
    """Append ``(monotonic s, the twin process's CPU s)`` every :data:`CPU_SAMPLE_S` until
    cancelled (the storm's end)."""
    while True:
        cpu = process_cpu(pid)  # the process only: walking its children is this process's CPU
        if cpu is not None:
            out.append((time.monotonic(), cpu))
        await asyncio.sleep(CPU_SAMPLE_S)  # a sampling period, not a wait for work


def peak_busy(samples: list[tuple[float, float]], window_s: float = PEAK_WINDOW_S) -> float:
    """The twin process's busiest stretch of at least ``window_s`` (the shortest one ending at
    each sample): CPU s per wall s, 1.0 meaning one core all along; 0 with too few samples."""
    best = 0.0
    start = 0
    for end in range(len(samples)):
        while start + 1 < end and samples[end][0] - samples[start + 1][0] >= window_s:
            start += 1
        wall = samples[end][0] - samples[start][0]
        if wall >= window_s:
            best = max(best, (samples[end][1] - samples[start][1]) / wall)
    return round(best, 3)


def format_twin_cpu(cpu: dict[str, float], ramp: float | None = None, members: int = 0) -> str:
    """The storm's CPU per member, and with ``ramp`` (members per second) the cores the three
    parts need at that pace together (the twin, its functions and the load generator share this
    machine's cores: more than it has, and every stage queues for a core). Only for rooms of
    :data:`PACE_MEMBERS` or more: a small room's figure is mostly the storm's fixed costs (its
    broadcast, its room's first reads), not a cost per member."""
    text = (f"twin CPU per member: {cpu['serverMsPerMember']:.2f} ms in its process, "
            f"{cpu['functionsMsPerMember']:.2f} ms in its function workers; its process "
            f"{100 * cpu['serverBusy']:.0f} % busy (of one core) over the storm's "
            f"{cpu['wallS']:g} s, {100 * cpu.get('serverPeakBusy', 0.0):.0f} % in its busiest "
            f"{PEAK_WINDOW_S:g} s")
    if "clientMsPerMember" in cpu:
        total = cpu["serverMsPerMember"] + cpu["functionsMsPerMember"] + cpu["clientMsPerMember"]
        text += (f"\n  + {cpu['clientMsPerMember']:.2f} ms in the load generator = {total:.2f} ms "
                 "per member")
        if ramp and members >= PACE_MEMBERS:
            text += (f": {total * ramp / 1000:.1f} cores at {ramp:g} members/s, on a machine of "
                     f"{os.cpu_count() or 1}")
    return text


def room_drained(aws: str, room: str, timeout_s: float) -> float | None:
    """Seconds until the roster holds no member of ``room`` (the storm's ``$disconnect`` records
    processed by chat), polled with a deadline; None if it still has members then."""
    import boto3

    from pipeline import DEFAULT_REGION

    ddb = boto3.client("dynamodb", endpoint_url=aws, region_name=DEFAULT_REGION,
                       aws_access_key_id="test", aws_secret_access_key="test")
    table = ddb.list_tables()["TableNames"][0]
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        left = ddb.query(TableName=table, KeyConditionExpression="pk = :pk", Select="COUNT",
                         ExpressionAttributeValues={":pk": {"S": f"ROOM#{room}"}})["Count"]
        if not left:
            return time.perf_counter() - t0
        time.sleep(DRAIN_POLL_S)  # polling the roster, bounded by the deadline
    return None


async def drained(twin: TwinProcess, report: Report) -> float | None:
    room = str(report.meta["joinStorm"]["room"])
    took = await asyncio.to_thread(room_drained, twin.aws, room, DRAIN_TIMEOUT_S)
    members = report.meta["joinStorm"]["members"]
    after = f"more than {DRAIN_TIMEOUT_S:g}" if took is None else f"{took:.1f}"
    print(f"  its {members} disconnects processed (room empty in the roster) after {after} s; "
          f"load average {load()}", flush=True)
    return None if took is None else round(took, 2)


def p99_ms(report: Report) -> float:
    return float(report.meta["joinStorm"]["joinMs"]["p99"])


async def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-join-storm-"))
    print(f"starting a twin (-c auth=jwt, {LATENCY_MS:g} ms per @connections call) in {work} ...",
          flush=True)
    twin = start(work)
    tok = token(work)
    reports: list[tuple[int, Report]] = []
    try:
        # Lambda keeps warm containers; the twin starts a function's worker on its first use:
        # one unrecorded storm starts chat, presence, broadcast and fanout before measuring.
        print(f"warm-up: a storm of {WARMUP_ROOM}, not recorded; load average {load()}",
              flush=True)
        await drained(twin, await storm(twin, WARMUP_ROOM, args.ramp, tok, None))
        for k, size in enumerate(args.sizes, 1):
            print(f"\n== room of {size}, joins at {args.ramp:g}/s; load average {load()}",
                  flush=True)
            path = args.json_dir / f"join-storm-{k}-{size}.json" if args.json_dir else None
            report = await storm(twin, size, args.ramp, tok, path)
            print(format_summary(report))
            if "twinCpu" in report.meta:
                print(format_twin_cpu(report.meta["twinCpu"], args.ramp, size))
            print(f"load average after: {load()}", flush=True)
            # the next storm must not queue behind this one's disconnects on chat's shards
            report.meta["leaveDrainS"] = await drained(twin, report)
            if path is not None:
                report.write(path)
            reports.append((size, report))
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            stop_twin(twin)
    smallest = min(reports, key=lambda r: r[0])
    print(f"\njoin -> joined p99, same twin, same run (goal: within 2x of the room of "
          f"{smallest[0]}):")
    for size, report in reports:
        cpu = report.meta.get("twinCpu")
        busy = (f"   (twin process {100 * cpu.get('serverPeakBusy', 0.0):.0f} % busy at peak, "
                f"{cpu['serverMsPerMember']:.2f} ms CPU per member)" if cpu else "")
        print(f"  room of {size:>6}: p99 {p99_ms(report):9.1f} ms  = "
              f"{p99_ms(report) / max(p99_ms(smallest[1]), 1e-3):5.2f}x{busy}")
    return 1 if any(failed(r) for _, r in reports) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_join_storm",
                                description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 1000])
    p.add_argument("--ramp", type=float, default=NEW_CONNECTIONS_PER_S,
                   help=f"connections (and joins) per second (default {NEW_CONNECTIONS_PER_S:g})")
    p.add_argument("--json-dir", type=Path,
                   help="write join-storm-<k>-<size>.json reports here (k: the run's place)")
    args = p.parse_args(argv)
    if not all(2 <= s <= 20_000 for s in args.sizes) or not 0 < args.ramp <= 100_000:
        print("--sizes must be 2..20000 and --ramp positive", file=sys.stderr)
        return 2
    if args.json_dir is not None and not args.json_dir.is_dir():
        print(f"--json-dir {args.json_dir} is not a directory", file=sys.stderr)
        return 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
