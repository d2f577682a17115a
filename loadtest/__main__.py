"""``python -m loadtest [options]`` runs a load test; ``python -m loadtest merge`` merges reports.

Exit codes: 0 ran (figures printed), 1 frames were lost or the target failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from loadtest.config import RESULTS_DIR, RunConfig, output_path, parse_run_args, prepare_output
from loadtest.errors import ConfigError, LoadTestError
from loadtest.report import Report, format_summary, merge
from loadtest.runner import LoadRun, Publish


def merge_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest merge", description="Merge JSON reports exactly (HDR add)."
    )
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="write the merged report here "
                        f"(a bare file name goes to {RESULTS_DIR}/)")
    parser.add_argument("--plot", type=Path, help="write a PNG of the merged report")
    args = parser.parse_args(argv)
    args.output, args.plot = output_path(args.output), output_path(args.plot)
    merged = merge([Report.read(p) for p in args.reports], [str(p) for p in args.reports])
    print(format_summary(merged))
    if args.output:
        prepare_output(args.output)
        merged.write(args.output)
        print(f"report: {args.output}")
    if args.plot:
        from loadtest.plot import write_plot

        prepare_output(args.plot)
        write_plot(merged, args.plot)
        print(f"plot:   {args.plot}")
    return 0


def run_main(cfg: RunConfig) -> int:
    if cfg.role == "worker":
        from loadtest.distributed import DEFAULT_MASTER_PORT, run_worker

        return run_worker(cfg.master_host, cfg.master_port or DEFAULT_MASTER_PORT)
    from loadtest.target import resolve

    target = resolve(cfg)
    try:
        if cfg.workers or cfg.role == "master":
            report = _run_locust(cfg, target.ws, target.aws)
            return _finish(cfg, report)
        if cfg.scenario == "join-storm":
            from loadtest.join_storm import run_join_storm

            report = asyncio.run(run_join_storm(cfg, target.ws, target.aws))
            return _finish(cfg, report)
        publish: Publish | None = None
        if cfg.scenario == "broadcast":
            from loadtest.publisher import make_publisher

            publish = make_publisher(target.aws)
        print(f"{cfg.scenario}: {cfg.connections} connections, {cfg.rate:g}/s for "
              f"{cfg.duration:g} s against {target.ws}", flush=True)  # fmt: skip
        report = asyncio.run(LoadRun(cfg, target.ws, publish=publish).run())
    finally:
        target.stop()
    return _finish(cfg, report)


def _run_locust(cfg: RunConfig, url: str, aws: str | None) -> Report:
    """On Locust: a master here and ``--workers`` workers here (or, with ``--master``, elsewhere)."""
    from loadtest.distributed import report_path, run_distributed

    json_path = report_path(cfg)
    where = "on other machines" if cfg.role == "master" else "here"
    print(f"{cfg.scenario} on Locust: {cfg.connections} connections, {cfg.rate:g}/s for "
          f"{cfg.duration:g} s against {url}, {cfg.workers} workers {where}", flush=True)
    if cfg.role == "master":
        return run_distributed(cfg, url, json_path, local_workers=0, expect=cfg.workers,
                               bind_host="0.0.0.0", port=cfg.master_port, aws=aws)  # fmt: skip
    return run_distributed(cfg, url, json_path, local_workers=cfg.workers, expect=cfg.workers,
                           port=cfg.master_port, aws=aws)  # fmt: skip


def _finish(cfg: RunConfig, report: Report) -> int:
    print(format_summary(report))
    if cfg.json_path:
        prepare_output(cfg.json_path)
        report.write(cfg.json_path)
        print(f"report: {cfg.json_path}")
    if cfg.plot_path:
        from loadtest.plot import write_plot

        prepare_output(cfg.plot_path)
        write_plot(report, cfg.plot_path)
        print(f"plot:   {cfg.plot_path}")
    failed = report.totals["lost"] or not report.totals["connectionsOpened"]
    if cfg.scenario == "join-storm":
        from loadtest.join_storm import failed as storm_failed

        failed = failed or storm_failed(report)
    return 1 if failed else 0


def _is_room_broadcast(argv: list[str]) -> bool:
    """``--scenario broadcast --room-size N``: the broadcast-at-scale benchmark (on Locust, with
    ``--workers``/``--master``/``--worker``: the room spread over the workers)."""
    scenario = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--scenario"]
    locust = any(a.split("=", 1)[0] in ("--workers", "--master", "--worker") for a in argv)
    return not locust and scenario[-1:] == ["broadcast"] and any(
        a == "--room-size" or a.startswith("--room-size=") for a in argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["merge"]:
            return merge_main(argv[1:])
        if _is_room_broadcast(argv):  # one room of --room-size members through the fan-out tier
            from loadtest.bench_broadcast import main as broadcast_main

            return broadcast_main(argv)
        return run_main(parse_run_args(argv))
    except ConfigError as exc:
        print(f"python -m loadtest: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a report or plot that cannot be written
        print(f"python -m loadtest: {exc}", file=sys.stderr)
        return 1
    except LoadTestError as exc:
        print(f"python -m loadtest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
