"""``python -m pipeline plan``: print (and ``--json``) the capacity and cost plan."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.loadtest_report import ReportFormatError, output_path, read_summary
from pipeline.names import FANOUT_ROUTE
from pipeline.plan import PlanError
from pipeline.plan.lambda_cost import LAMBDA_COST_FILE, load_lambda_cost
from pipeline.plan.model import STREAM_MODES, Plan, Traffic, plan
from pipeline.plan.prices import PRICES_FILE, load_prices


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The traffic shape (or a load-test report) and the model's assumptions."""
    parser.add_argument("--connections", type=int, help="concurrent connections")
    parser.add_argument("--frames-per-minute", type=float, help="frames each connection sends")
    parser.add_argument("--frame-bytes", type=int, help="bytes per client frame")
    parser.add_argument("--broadcasts-per-minute", type=float, default=0.0,
                        help="server-side publishes per minute (whole stage)")
    parser.add_argument("--room-size", type=int, default=0, help="members a broadcast reaches")
    parser.add_argument("--replies-per-frame", type=float, default=1.0,
                        help="postToConnection calls per client frame (default 1)")
    parser.add_argument("--consumers", type=int, default=None,
                        help="consumer functions (default: the registry's)")
    parser.add_argument("--parallelization", type=int, default=None,
                        help="ParallelizationFactor of every function (default: the largest "
                             "in the registry apart from the fan-out tier's, whose records are "
                             "pages of recipients, not frames)")
    parser.add_argument("--hours-per-month", type=float, default=730.0)
    parser.add_argument("--stream-mode", choices=STREAM_MODES, default="provisioned")
    parser.add_argument("--headroom", type=float, default=0.25,
                        help="share of each shard's write limit kept free (default 0.25)")
    parser.add_argument("--session-minutes", type=float, default=120.0,
                        help="average connection life (default 120, AWS's limit)")
    parser.add_argument("--invocation-ms", type=float, default=20.0,
                        help="Lambda time per invocation besides its posts (default 20)")
    parser.add_argument("--ms-per-post", type=float, default=1.0,
                        help="Lambda time per postToConnection, pipelined (default 1)")
    parser.add_argument("--lambda-cost", type=Path, default=LAMBDA_COST_FILE, metavar="FILE",
                        help="measured billed ms per 1,000 records per consumer (default: "
                             f"{LAMBDA_COST_FILE.name}, written by python -m loadtest.bench)")
    parser.add_argument("--assumed-lambda-cost", action="store_true",
                        help="price Lambda duration with --invocation-ms and --ms-per-post "
                             "instead of the measured cost")
    parser.add_argument("--from-loadtest", type=Path, metavar="REPORT.json",
                        help="take connections, rate, frame size and fan-out from a load test")
    parser.add_argument("--prices", type=Path, default=PRICES_FILE, help="prices file")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the plan as JSON")


def traffic_from_loadtest(path: Path) -> dict[str, Any]:
    """Connections, frames/min, frame bytes and fan-out measured by ``python -m loadtest``."""
    # a bare name is looked up where the load test writes it (loadtest-results/), as it was given
    written = output_path(path)
    if not path.exists() and written is not None and written.exists():
        path = written
    try:
        report = read_summary(path)
    except ReportFormatError as exc:
        raise PlanError(str(exc)) from exc
    meta, duration = report.meta, report.duration_s
    connections = int(meta.get("connections") or report.totals.get("connectionsOpened", 0))
    if duration <= 0 or connections <= 0:
        raise PlanError(f"{path}: the report has no duration or no connections")
    sent_per_min = report.totals.get("sent", 0) / duration * 60
    frame_bytes = int(meta.get("payloadBytes") or 0) + 64  # the frame's JSON around the payload
    scenario = meta.get("scenario")
    if scenario == "broadcast":  # one publisher reaches every connection
        return {"connections": connections, "frames_per_minute": 0.0, "frame_bytes": frame_bytes,
                "broadcasts_per_minute": sent_per_min, "room_size": connections}
    replies = 1.0
    if scenario == "chat":  # a send reaches every other member of the room
        replies = float(max(1, int(meta.get("roomSize") or 2) - 1))
    return {"connections": connections, "frames_per_minute": sent_per_min / connections,
            "frame_bytes": frame_bytes, "replies_per_frame": replies}


@dataclass(frozen=True)
class Parallelization:
    """The registry's default ParallelizationFactor and where it comes from (for the table)."""

    factor: int
    source: str


def _registry_defaults() -> tuple[int, Parallelization, int, int, int]:
    from pipeline.registry import load_all

    every = load_all()
    # The fan-out tier's records are pages of recipients, not frames or publishes: it counts as
    # a consumer, but its batch size and ParallelizationFactor are not the frame path's.
    specs = [s for s in every if FANOUT_ROUTE not in s.server_route_keys] or every
    client = [s for s in specs if s.routes] or specs
    broadcast = [s for s in specs if not s.routes] or specs
    factor = max(s.parallelization_factor for s in specs)
    source = "the registry's largest"
    tier = [s for s in every if s not in specs]
    if tier:
        source += ", the fan-out tier's " + ", ".join(
            f"{s.parallelization_factor} ({s.name})" for s in tier) + " aside"
    return (len(every), Parallelization(factor, source),
            max(s.memory_mb for s in client), max(s.memory_mb for s in broadcast),
            min(s.batch_size for s in specs))


def run(args: argparse.Namespace) -> int:
    """Plan, print, and write the JSON."""
    try:
        shape: dict[str, Any] = {}
        if args.from_loadtest:
            shape = traffic_from_loadtest(args.from_loadtest)
        for key in ("connections", "frames_per_minute", "frame_bytes"):
            if getattr(args, key) is not None:
                shape[key] = getattr(args, key)
            if key not in shape:
                raise PlanError(f"--{key.replace('_', '-')} is required "
                                "(or --from-loadtest REPORT.json)")
        consumers, parallel, memory, bmemory, batch = _registry_defaults()
        shape.setdefault("broadcasts_per_minute", args.broadcasts_per_minute)
        shape.setdefault("room_size", args.room_size)
        shape.setdefault("replies_per_frame", args.replies_per_frame)
        if not args.assumed_lambda_cost:
            cost = load_lambda_cost(args.lambda_cost)
            consumer, billed = cost.worst()
            shape["billed_ms_per_1000"] = billed
            shape["billed_source"] = (f"{consumer}, the dearest measured consumer, batch "
                                      f"{cost.batch_size}; run {cost.source}")
        traffic = Traffic(
            **shape, consumers=args.consumers or consumers,
            parallelization=args.parallelization or parallel.factor, memory_mb=memory,
            broadcast_memory_mb=bmemory, hours_per_month=args.hours_per_month,
            stream_mode=args.stream_mode, headroom=args.headroom,
            session_minutes=args.session_minutes, invocation_ms=args.invocation_ms,
            ms_per_post=args.ms_per_post, batch_size=batch,
        )
        result = plan(traffic, load_prices(args.prices))
    except PlanError as exc:
        print(f"plan: {exc}", file=sys.stderr)
        return 2
    print(format_plan(result, None if args.parallelization else parallel.source))
    if args.json:
        args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def format_plan(p: Plan, parallelization_source: str | None = None) -> str:
    """The plan as a table for people (*parallelization_source*: where the factor came from,
    None when it was given)."""
    t, r = p.traffic, p.rates
    source = f": {parallelization_source}" if parallelization_source else ""
    unit_w = max([len("unit"), *(len(line.unit) for c in p.components.values()
                                 for line in c.lines)])
    out = [
        f"traffic   {t.connections:,} connections x {t.frames_per_minute:g} frames/min of "
        f"{t.frame_bytes:,} B; {t.broadcasts_per_minute:g} broadcasts/min to {t.room_size:,}",
        f"stream    {p.shards} shards ({t.stream_mode}; limited by {p.shards_by}; headroom "
        f"{t.headroom:.0%}); {r['recordsPerS']:,.1f} records/s, "
        f"{r['writeBytesPerS'] / 1024:,.1f} KiB/s",
        f"consumers {t.consumers} (max 20), concurrency {p.concurrency_per_function} per function "
        f"(shards x ParallelizationFactor {t.parallelization}{source}), "
        f"{p.concurrency_per_function * t.consumers} in all",
        f"@connections {r['postsPerS']:,.1f} requests/s (quota 10,000); new connections "
        f"{r['newConnectionsPerS']:,.2f}/s (quota 500)",
        "",
        f"{'component':<30} {'quantity':>18} {'unit':<{unit_w}} {'USD/month':>12}",
    ]
    for name, c in p.components.items():
        for i, line in enumerate(c.lines):
            label = name if i == 0 else "  " + line.item
            out.append(f"{label:<30} {line.quantity:>18,.1f} {line.unit:<{unit_w}} "
                       f"{line.usd:>12,.2f}")
    out.append(f"{'total':<30} {'':>18} {'':<{unit_w}} {p.monthly_usd:>12,.2f}")
    assumed = ", ".join(f"{f.name}={getattr(t, f.name)}" for f in fields(t)
                        if f.name in ("session_minutes", "envelope_bytes", "invocation_ms",
                                      "ms_per_post", "batch_size", "failure_rate",
                                      "log_bytes_per_invocation"))
    out += ["", f"assumed: {assumed}; no free tier; us-east-1 list prices ({PRICES_FILE.name})"]
    out += [f"WARNING [{w.level}] {w.message}" for w in p.warnings] or ["no quota warnings"]
    out += [f"note: {note}" for note in p.notes]
    out.append(f"deploy: {p.deploy}")
    return "\n".join(out)
