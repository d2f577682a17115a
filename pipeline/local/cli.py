"""``python -m pipeline local``: run the synthesized pipeline on 127.0.0.1 until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from pipeline.registry import PROJECT_ROOT

log = logging.getLogger("pipeline.local")


DEFAULT_FUNCTION_LOGS = Path(".twin") / "logs"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--stage", default="dev", help="stage to run (default: dev)")
    parser.add_argument("--port", type=int, default=8080,
                        help="WebSocket and @connections port (0 = free port; default 8080)")
    parser.add_argument("--aws-port", type=int, default=4566,
                        help="AWS services port (0 = free port; default 4566)")
    parser.add_argument("--assembly", type=Path, default=PROJECT_ROOT / "cdk.out",
                        help="cloud assembly directory (default: cdk.out)")
    parser.add_argument("--no-synth", action="store_true",
                        help="use the existing assembly instead of running `cdk synth` first")
    parser.add_argument("--enforce-limits", action="store_true",
                        help="throttle Kinesis writes at 1,000 records/s and 1 MiB/s per shard")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                        help="close idle WebSocket connections after this (AWS: 600)")
    parser.add_argument("--max-connection-life", type=float, default=None, metavar="SECONDS",
                        help="close connections older than this (AWS: 7200)")
    parser.add_argument("--no-iam", action="store_true",
                        help="do not evaluate the stack's IAM policies (integration roles, "
                             "function roles, @connections, SigV4 $connect); default: enforced")
    parser.add_argument("--function-logs", default=str(DEFAULT_FUNCTION_LOGS), metavar="DIR",
                        help="write each function's logs to DIR/<function>.log, like CloudWatch "
                             f"Logs (default: {DEFAULT_FUNCTION_LOGS}); '-' = inline on stderr")
    parser.add_argument("--connections-rps", type=int, default=10_000, metavar="N",
                        help="@connections calls per second before 429 LimitExceededException "
                             "(the account quota; default 10,000, burst half of it; 0 = off)")
    parser.add_argument("--new-connections-per-second", type=int, default=500, metavar="N",
                        help="connects per second before they are refused with 429 "
                             "(the account quota; default 500; 0 = off)")
    parser.add_argument("--connections-latency-ms", type=float, default=0.0, metavar="MS",
                        help="added to every @connections call (AWS in-Region: 10-20 ms)")
    parser.add_argument("--log-level", default="WARNING", help="twin log level (default WARNING)")


def synthesize(assembly: Path, stage: str) -> None:
    """``npx cdk synth`` for the stage into ``assembly``."""
    npx = shutil.which("npx")
    if npx is None:
        raise SystemExit("npx not found: install Node 20+ and run `make install`, or use --no-synth")
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           "CDK_DISABLE_CLI_TELEMETRY": "true"}
    cmd = [npx, "cdk", "synth", "--quiet", "-c", f"stage={stage}", "-o", str(assembly)]
    print(f"synthesizing: {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cdk synth failed (exit {done.returncode})")


def run(args: argparse.Namespace) -> int:
    from pipeline.local.gateway.quotas import GatewayQuotas
    from pipeline.local.twin import TwinConfig

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for port, flag in ((args.port, "--port"), (args.aws_port, "--aws-port")):
        if not 0 <= port <= 65535:
            print(f"{flag} must be 0..65535", file=sys.stderr)
            return 2
    for value, flag in ((args.connections_rps, "--connections-rps"),
                        (args.new_connections_per_second, "--new-connections-per-second"),
                        (args.connections_latency_ms, "--connections-latency-ms")):
        if value < 0:
            print(f"{flag} must be >= 0", file=sys.stderr)
            return 2
    assembly = args.assembly.resolve()
    if not args.no_synth:
        synthesize(assembly, args.stage)
    config = TwinConfig(
        stage=args.stage, port=args.port, aws_port=args.aws_port, assembly=assembly,
        enforce_limits=args.enforce_limits, idle_timeout_s=args.idle_timeout,
        max_connection_life_s=args.max_connection_life, iam=not args.no_iam,
        function_logs=None if args.function_logs == "-" else Path(args.function_logs),
        quotas=GatewayQuotas(connections_rps=args.connections_rps,
                             new_connections_per_second=args.new_connections_per_second,
                             connections_latency_ms=args.connections_latency_ms),
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve(config))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): the twin's one process serves the gateway,
    @connections, the AWS services and the mappings, so socket handling is its hot path."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(config: object) -> int:
    from pipeline.local.cfn import CfnError
    from pipeline.local.twin import Twin, TwinConfig, TwinError

    assert isinstance(config, TwinConfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    twin = Twin(config)
    try:
        start = asyncio.ensure_future(twin.start())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not start.done():  # Ctrl-C during start-up
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await start
            return 0
        urls = start.result()
        print(f"local twin of WebSocketPipeline-{config.stage} ready (Ctrl-C to stop)\n"
              f"  WebSocket API     {urls.ws}\n"
              f"  @connections API  {urls.connections}/{{connectionId}}\n"
              f"  AWS services      {urls.aws}  (any credentials, region us-east-1)"
              + (f"\n  function logs     {config.function_logs}/<function>.log"
                 if config.function_logs else ""),
              flush=True)
        print("TWIN-READY " + orjson.dumps(urls.as_dict()).decode(), flush=True)
        await stopped
        print("stopping the local twin", flush=True)
        return 0
    except (CfnError, TwinError, OSError) as exc:
        print(f"local twin failed to start: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # a part refused the stack: say which, never hang
        log.debug("start-up failure", exc_info=True)
        print(f"local twin failed to start: {type(exc).__name__}: {exc}", file=sys.stderr,
              flush=True)
        return 1
    finally:
        await twin.stop()
