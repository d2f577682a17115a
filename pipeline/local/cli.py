"""``python -m pipeline local``: run the synthesized pipeline on 127.0.0.1 until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import orjson

from pipeline import PROJECT_ROOT
from pipeline.names import DEFAULT_STAGE, TWIN_AWS_PORT, TWIN_HOST, TWIN_PORT, stack_name

log = logging.getLogger("pipeline.local")


DEFAULT_FUNCTION_LOGS = Path(".twin") / "logs"
DEFAULT_OIDC_DIR = Path(".twin") / "oidc"


HELP = "run the synthesized pipeline on 127.0.0.1 (the local twin)"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--stage", default=DEFAULT_STAGE,
                        help=f"stage to run (default: {DEFAULT_STAGE})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the WebSocket API's bind address (default 127.0.0.1; 0.0.0.0: "
                             "reachable from a phone, a VM or a container); the AWS services "
                             "stay on 127.0.0.1")
    parser.add_argument("--port", type=int, default=TWIN_PORT,
                        help=f"WebSocket and @connections port (0 = free port; default {TWIN_PORT})")
    parser.add_argument("--aws-port", type=int, default=TWIN_AWS_PORT,
                        help=f"AWS services port (0 = free port; default {TWIN_AWS_PORT})")
    parser.add_argument("--assembly", type=Path, default=PROJECT_ROOT / "cdk.out",
                        help="cloud assembly directory (default: cdk.out)")
    parser.add_argument("--no-synth", action="store_true",
                        help="use the existing assembly instead of running `cdk synth` first")
    parser.add_argument("--enforce-limits", action="store_true",
                        help="throttle Kinesis writes at 1,000 records/s and 1 MiB/s per shard")
    parser.add_argument("--consumer-activation", type=float, default=1.0, metavar="SECONDS",
                        help="a registered stream consumer stays CREATING this long (AWS: "
                        "seconds); at most 5 may be CREATING at once")
    parser.add_argument("--grow-shards", type=int, default=None, metavar="N",
                        help="grow every stream to N open shards while running (as on-demand "
                        "scaling does), --grow-after seconds after start")
    parser.add_argument("--grow-after", type=float, default=10.0, metavar="SECONDS",
                        help="when --grow-shards splits the shards (default 10)")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                        help="close idle WebSocket connections after this (AWS: 600)")
    parser.add_argument("--max-connection-life", type=float, default=None, metavar="SECONDS",
                        help="close connections older than this (AWS: 7200)")
    parser.add_argument("--no-iam", action="store_true",
                        help="do not evaluate the stack's IAM policies (integration roles, "
                             "function roles, @connections, SigV4 $connect); default: enforced")
    parser.add_argument("--integration-response-selection", choices=("status", "lambda-like"),
                        default="status",
                        help="how an AWS-service integration's answer selects its integration "
                             "response (AWS does not document it): the HTTP status (default, as "
                             "for HTTP and AWS back ends in REST APIs) or the body's errorMessage "
                             "(as for Lambda: every Kinesis answer falls to $default)")
    parser.add_argument("--connect-failure", choices=("accept", "refuse"), default="refuse",
                        help="a failed $connect integration (roster PutItem): refuse the "
                             "connection with 500 (default: the stack's $connect has no "
                             "integration response for a failure, and AWS's route-keys page "
                             "says the connection is not made) or accept it anyway (as users "
                             "report for non-proxy HTTP integrations)")
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
    parser.add_argument("--ready-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long start-up waits for every mapping to read its canary "
                             "record before it fails (default 30)")
    parser.add_argument("--no-reload", action="store_true",
                        help="run the consumers' cdk.out assets as synthesized; default: run "
                             "consumers/<name>/ and reload a function when its files change")
    parser.add_argument("--consumers-dir", type=Path, default=PROJECT_ROOT / "consumers",
                        metavar="DIR", help=argparse.SUPPRESS)  # tests: a copy to edit
    parser.add_argument("--log-level", default="WARNING", help="twin log level (default WARNING)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a start-up failure")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="synth context, as `cdk synth -c` (repeatable), e.g. -c auth=jwt")
    parser.add_argument("--oidc-dir", default=str(DEFAULT_OIDC_DIR), metavar="DIR",
                        help="auth=jwt: the twin issuer's key and settings, read by "
                             f"`python -m pipeline token` (default: {DEFAULT_OIDC_DIR})")


def busy_port(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``host:port`` cannot be bound because something already listens there.

    SO_REUSEADDR as the servers use it, so a port in TIME_WAIT counts as free; only a live
    listener (a running twin, usually) makes it busy. Port 0 is never busy.
    """
    if port == 0:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def port_in_use_message(port: int) -> str:
    """The one line a busy port gets (before any synth, so a running twin's cdk.out is kept)."""
    return (f"port {port} is in use (a twin is probably already running: stop it, "
            "or use --port/--aws-port)")


def registry_problem() -> str | None:
    """What is wrong with the consumers' settings files, checked in-process before a synth
    (one line naming the file and the key), or None."""
    from pipeline.registry import RegistryError, load_all

    try:
        load_all()
    except RegistryError as exc:
        return str(exc)
    return None


# auth=jwt with no issuer of its own: the template names this one; the twin serves it (its
# real port replaces it at start-up, pipeline/local/oidc.py) and the audience stays as named.
TWIN_JWT_CONTEXT = {"jwtIssuer": f"http://{TWIN_HOST}:{TWIN_PORT}", "jwtAudience": "websocket-pipeline-local"}


def parse_context(pairs: list[str], stage: str) -> dict[str, str]:
    """``-c KEY=VALUE`` pairs as a dict, ``stage`` included; auth=jwt gets the twin's issuer
    unless an issuer (or cognito) is given. Raises ValueError on a malformed pair."""
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-c {pair!r}: expected KEY=VALUE")
        context[key] = value
    if context.setdefault("stage", stage) != stage:
        raise ValueError(f"-c stage={context['stage']} contradicts --stage {stage}: use --stage")
    if context.get("auth") == "jwt" and not ({"jwtIssuer", "cognito"} & set(context)):
        context.update(TWIN_JWT_CONTEXT)
    return context


def synthesize(assembly: Path, stage: str, context: dict[str, str] | None = None) -> None:
    """``npx cdk synth`` for the stage (and any other *context*) into ``assembly``."""
    npx = shutil.which("npx")
    if npx is None:
        raise SystemExit("npx not found: install Node 20+ and run `make install`, or use --no-synth")
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           "CDK_DISABLE_CLI_TELEMETRY": "true"}
    pairs = {**(context or {}), "stage": stage}
    cmd = [npx, "cdk", "synth", "--quiet", *(a for k, v in pairs.items() for a in ("-c", f"{k}={v}")),
           "-o", str(assembly)]
    print(f"synthesizing: {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cdk synth failed (exit {done.returncode})")


def settle_heap() -> int:
    """Collect once, then freeze what start-up built (moto's backends and models, the parsed
    template, airspeed's trees: ~170,000 objects) out of the collector's reach; the count frozen.

    Python's full (generation 2) collection walks every tracked object: with start-up's heap in
    it, the twin's event loop stalled 65-330 ms at a time during load tests (a gc callback's
    measurements), seen as 300 ms p99s at 100 frames/s. Frozen objects are never collected, and
    start-up's objects live as long as the twin anyway.
    https://docs.python.org/3/library/gc.html#gc.freeze
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def run(args: argparse.Namespace) -> int:
    from pipeline.local.errors import UnsupportedVersionError
    from pipeline.local.patches import check_versions

    try:  # before importing the twin: an unexpected release fails here, in one line
        check_versions()
    except UnsupportedVersionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pipeline.local.gateway.quotas import GatewayQuotas
    from pipeline.local.twin import TwinConfig

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for port, flag in ((args.port, "--port"), (args.aws_port, "--aws-port")):
        if not 0 <= port <= 65535:
            print(f"{flag} must be 0..65535", file=sys.stderr)
            return 2
    # Before synthesizing: a second `make local` must not rewrite the running twin's cdk.out.
    for port, host in ((args.port, args.host), (args.aws_port, "127.0.0.1")):
        if busy_port(port, host):
            print(port_in_use_message(port), file=sys.stderr)
            return 2
    try:
        context = parse_context(args.context, args.stage)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    for value, flag in ((args.connections_rps, "--connections-rps"),
                        (args.new_connections_per_second, "--new-connections-per-second"),
                        (args.connections_latency_ms, "--connections-latency-ms")):
        if value < 0:
            print(f"{flag} must be >= 0", file=sys.stderr)
            return 2
    if args.host not in ("127.0.0.1", "localhost") and context.get("auth", "none") == "none":
        print(f"warning: --host {args.host}: other machines can reach the twin, and stage "
              f"{args.stage} has no auth (anyone who reaches it can connect and send)",
              file=sys.stderr, flush=True)
    assembly = args.assembly.resolve()
    if not args.no_synth:
        problem = registry_problem()
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        synthesize(assembly, args.stage, context)
    elif args.context:
        log.warning("--no-synth: the -c context is not used (the assembly is as synthesized)")
    config = TwinConfig(
        stage=args.stage, port=args.port, aws_port=args.aws_port, assembly=assembly,
        enforce_limits=args.enforce_limits, idle_timeout_s=args.idle_timeout,
        consumer_activation_s=args.consumer_activation,
        grow_shards=args.grow_shards, grow_after_s=args.grow_after,
        max_connection_life_s=args.max_connection_life, iam=not args.no_iam,
        function_logs=None if args.function_logs == "-" else Path(args.function_logs),
        integration_response_selection=args.integration_response_selection,
        connect_failure=args.connect_failure,
        oidc_dir=Path(args.oidc_dir),
        ready_timeout_s=args.ready_timeout,
        consumers_dir=None if args.no_reload else args.consumers_dir.resolve(),
        host=args.host,
        synth_context=context,
        quotas=GatewayQuotas(connections_rps=args.connections_rps,
                             new_connections_per_second=args.new_connections_per_second,
                             connections_latency_ms=args.connections_latency_ms),
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve(config, debug=args.debug))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): the twin's one process serves the gateway,
    @connections, the AWS services and the mappings, so socket handling is its hot path."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(config: object, debug: bool = False) -> int:
    from pipeline.aws.limits import REGION
    from pipeline.local.errors import TwinError
    from pipeline.local.twin import RunningTwin, TwinConfig

    assert isinstance(config, TwinConfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    twin = RunningTwin(config)
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
        from pipeline.local.gateway.misses import route_list

        logs = ""
        if config.function_logs:
            logs = (f"\n  function logs     {config.function_logs}/<function>.log  "
                    f"({', '.join(twin.function_log_names)})")
        print(f"local twin of {stack_name(config.stage)} ready (Ctrl-C to stop)\n"
              f"  WebSocket API     {urls.ws}  (stage {config.stage}; any other path: 403)\n"
              f"  routes            {route_list(twin.route_keys)}\n"
              f"  @connections API  {urls.connections}/{{connectionId}}\n"
              f"  AWS services      {urls.aws}  (any credentials, region {REGION})" + logs
              + (f"\n  OIDC issuer       {urls.issuer}  (tokens: python -m pipeline token "
                 f"--sub NAME)" if urls.issuer else "")
              + (f"\n  hot reload        {config.consumers_dir}/<name>/  (a saved file "
                 "reloads its consumer; --no-reload: off)" if config.consumers_dir else "")
              + f"\n  demo page         {urls.ws.rsplit('/', 1)[0].replace('ws:', 'http:')}/",
              flush=True)
        settle_heap()
        print("TWIN-READY " + orjson.dumps(urls.as_dict()).decode(), flush=True)
        await stopped
        print("stopping the local twin", flush=True)
        return 0
    except (TwinError, OSError) as exc:  # every part's errors derive from TwinError
        if debug:
            traceback.print_exc()
        print(f"local twin failed to start: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # a part refused the stack: say which, never hang
        if debug:
            traceback.print_exc()
        print(f"local twin failed to start: {type(exc).__name__}: {exc}", file=sys.stderr,
              flush=True)
        return 1
    finally:
        await twin.stop()
