"""``python -m pipeline verify``: run every check against a stage, print the table, exit 1 on a fail.

The checks run one after the other in a fixed order (later ones use what earlier ones learned:
the connection, its id, the chat room); each ends at its own deadline and the whole run within
:data:`TOTAL_S`. Exit status: 0 all passed or skipped, 1 a check failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pipeline import DEFAULT_REGION
from pipeline.names import TWIN_AWS_ENDPOINT
from pipeline.verify import alarm, aws_checks, checks
from pipeline.verify.report import (
    CheckFailed,
    CheckResult,
    CheckSkipped,
    passed,
    render_table,
    write_json,
)
from pipeline.verify.target import Target, TargetError, parse_pairs, resolve

TOTAL_S = 60.0
CHECK_S = 12.0  # per check; an AWS cold start of the consumer functions fits comfortably
CLEANUP_S = 3.0  # kept out of the checks' budget to close the connections

Check = Callable[[checks.Session], Awaitable[str]]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("connect", checks.check_connect),
    ("echo", checks.check_echo),
    ("unknown-action", checks.check_unknown_action),
    ("invalid-frame", checks.check_invalid_frame),
    ("chat", checks.check_chat),
    ("ack", aws_checks.check_ack),
    ("message-too-big", checks.check_message_too_big),
    ("prune-410", aws_checks.check_prune_410),
    ("publish", aws_checks.check_publish),
    ("auth", checks.check_auth),
    ("connect-roster", aws_checks.check_connect_roster),
    ("subprotocol", checks.check_subprotocol),
    ("disconnect-status", aws_checks.check_disconnect_status),
    ("ping", checks.check_ping),
    ("alarm", alarm.check_alarm),
)
# Checks that wait on AWS's control plane get longer than CHECK_S (still within TOTAL_S):
# an alarm action and its history entry take seconds to appear.
CHECK_S_BY_NAME = {"alarm": 30.0}
CHECK_NAMES = tuple(name for name, _ in CHECKS)


async def run_checks(target: Target, *, total_s: float = TOTAL_S,
                     check_s: float = CHECK_S) -> list[CheckResult]:
    """Run :data:`CHECKS` in order against ``target``; one result each, within ``total_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + total_s - CLEANUP_S
    session = checks.Session(target)
    results: list[CheckResult] = []
    try:
        for name, check in CHECKS:
            now = loop.time()
            if now >= end:
                results.append(CheckResult(name, "skip", f"not run: the {total_s:g} s budget "
                                           "was spent by the checks before it", None))
                continue
            session.deadline = min(now + max(check_s, CHECK_S_BY_NAME.get(name, 0.0)), end)
            results.append(await _run_one(name, check, session))
    finally:
        await session.close_all()
    return results


async def _run_one(name: str, check: Check, session: checks.Session) -> CheckResult:
    started = time.perf_counter()
    # The checks end their own waits at the deadline; this bound only catches a stuck call.
    limit = session.remaining() + 2.0
    try:
        detail = await asyncio.wait_for(check(session), limit)
    except CheckSkipped as exc:
        return CheckResult(name, "skip", str(exc), None)
    except CheckFailed as exc:
        status, detail = "fail", str(exc)
    except TimeoutError:
        status, detail = "fail", f"no result within {limit:.0f} s"
    except Exception as exc:  # an AWS error, a lost connection: a failed check, said plainly
        status, detail = "fail", f"{type(exc).__name__}: {exc}"
    else:
        status = "pass"
    ms = (time.perf_counter() - started) * 1000
    return CheckResult(name, "pass" if status == "pass" else "fail", detail, ms)


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The ``verify`` command's arguments."""
    parser.add_argument("--url", help="the stage's WebSocket URL (wss://.../<stage>); "
                                      "default: the stack's WebSocketUrl output")
    parser.add_argument("--query", action="append", metavar="K=V",
                        help="add a query parameter to the connect URL, e.g. token=JWT "
                             "(repeatable)")
    parser.add_argument("--header", action="append", metavar="K:V",
                        help="add a header to the connect request (repeatable)")
    parser.add_argument("--stack", help="read WebSocketUrl, StreamName and RosterTableName from "
                                        "this CloudFormation stack's outputs")
    parser.add_argument("--aws-endpoint", metavar="URL",
                        help="AWS endpoint for the stream and roster (the twin's: "
                             f"{TWIN_AWS_ENDPOINT}); default: real AWS with --stack, else "
                             "$AWS_ENDPOINT_URL or the twin's default")
    parser.add_argument("--region", help="region (default: from the URL, $AWS_REGION, "
                                         f"$AWS_DEFAULT_REGION, {DEFAULT_REGION})")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the results as JSON: {url, passed, checks: [{name, "
                             "status, detail, ms}]}")


def run(args: argparse.Namespace) -> int:
    """Resolve the target, run the checks, print the table; 0 passed, 1 failed, 2 bad usage."""
    started = time.monotonic()
    try:
        target = resolve(url=args.url, stack=args.stack, aws_endpoint=args.aws_endpoint,
                         region=args.region, query=parse_pairs(args.query, "=", "--query"),
                         headers=parse_pairs(args.header, ":", "--header"))
    except TargetError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    where = (f"stream {target.aws.stream}, roster {target.aws.table}"
             + (f" at {target.aws.endpoint}" if target.aws.endpoint else "")
             if target.aws else f"no AWS access ({target.no_aws})")
    print(f"verifying {target.bare_url} ({where})", flush=True)
    # Reading the stack's outputs counts against the same budget.
    results = asyncio.run(run_checks(target, total_s=TOTAL_S - (time.monotonic() - started)))
    print(render_table(results), flush=True)
    if args.json is not None:
        write_json(args.json, target.bare_url, results)
    return 0 if passed(results) else 1
