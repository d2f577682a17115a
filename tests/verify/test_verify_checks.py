"""The checks against stub WebSocket servers on 127.0.0.1: a wrong answer fails its check with
what was seen, a right one passes, and the run stays inside its budget; plus the pure parts
(arguments, URLs, the table and the JSON)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pipeline.verify.cli import CHECK_NAMES, run_checks
from pipeline.verify.report import CheckResult, passed, render_table, write_json
from pipeline.verify.target import Target, TargetError, parse_pairs, resolve, with_query

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def _stub(handler: Handler, **kwargs: Any) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/dev"


async def _echo_wrongly(ws: ServerConnection) -> None:
    async for message in ws:
        try:
            frame = json.loads(message)
        except ValueError:
            continue
        if frame.get("action") == "echo":
            await ws.send(json.dumps({"action": "echo", "data": "not what was sent"}))
        elif frame.get("action") == "join":
            await ws.send(json.dumps({"action": "joined", "room": frame["room"]}))


async def test_a_wrong_echo_fails_the_run_with_what_it_saw() -> None:
    async with _stub(_echo_wrongly) as url:
        started = time.monotonic()
        results = await run_checks(Target(url, no_aws="no AWS access (test)"),
                                   total_s=12.0, check_s=1.0)
    took = time.monotonic() - started
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == list(CHECK_NAMES)
    assert by_name["connect"].status == "pass"
    assert by_name["echo"].status == "fail"
    assert "'not what was sent'" in by_name["echo"].detail
    # No error frame and no chat message ever comes: failed at their deadline, saying so.
    assert by_name["unknown-action"].status == "fail"
    assert "no error frame before the deadline" in by_name["unknown-action"].detail
    assert by_name["chat"].status == "fail" and "message at the other member" in \
        by_name["chat"].detail
    # The stub accepts a 128 KB + 1 message: a limit not enforced is a failure.
    assert by_name["message-too-big"].status == "fail"
    assert by_name["prune-410"].status == "skip" and "test" in by_name["prune-410"].detail
    assert not passed(results)
    assert took < 12.0 + 2.0


async def test_a_server_that_echoes_the_subprotocol_fails_the_subprotocol_check() -> None:
    async def idle(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with _stub(idle, subprotocols=["pipeline.verify"]) as url:
        results = await run_checks(Target(url, no_aws="none"), total_s=4.0, check_s=0.5)
    subprotocol = next(r for r in results if r.name == "subprotocol")
    assert subprotocol.status == "fail"
    assert "answered Sec-WebSocket-Protocol: 'pipeline.verify'" in subprotocol.detail


async def test_the_budget_bounds_the_whole_run() -> None:
    async def silent(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with _stub(silent) as url:
        started = time.monotonic()
        results = await run_checks(Target(url, no_aws="none"), total_s=4.5, check_s=1.0)
    assert time.monotonic() - started < 4.5 + 1.0
    assert any(r.status == "skip" and "budget was spent" in r.detail for r in results)
    assert len(results) == len(CHECK_NAMES)


def test_pairs_and_urls() -> None:
    assert parse_pairs(["token=a=b", "x="], "=", "--query") == (("token", "a=b"), ("x", ""))
    assert parse_pairs(["Authorization: Bearer t"], ":", "--header") == \
        (("Authorization", "Bearer t"),)
    with pytest.raises(TargetError, match="expected KEY=VALUE"):
        parse_pairs(["novalue"], "=", "--query")
    assert with_query("wss://h/dev?a=1", (("token", "x y"),)) == "wss://h/dev?a=1&token=x+y"
    target = Target("wss://h/dev?a=1", query=(("token", "t"),))
    assert target.bare_url == "wss://h/dev" and target.connect_url.endswith("a=1&token=t")


def test_resolve_without_aws_access_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    target = resolve(url="ws://127.0.0.1:9999/dev", stack=None, aws_endpoint=None, region=None)
    assert target.aws is None and "--aws-endpoint" in target.no_aws
    with pytest.raises(TargetError):
        resolve(url=None, stack=None, aws_endpoint=None, region=None)


def test_an_endpoint_that_does_not_answer_skips_rather_than_hangs() -> None:
    started = time.monotonic()
    target = resolve(url="ws://127.0.0.1:9/dev", stack=None, aws_endpoint="http://127.0.0.1:9",
                     region=None)
    assert target.aws is None and "http://127.0.0.1:9" in target.no_aws
    assert time.monotonic() - started < 15


def test_table_and_json(tmp_path: Path) -> None:
    results = [CheckResult("connect", "pass", "connection accepted", 12.34),
               CheckResult("prune-410", "skip", "no AWS access " + "x " * 80, None),
               CheckResult("echo", "fail", "echo reply carried 1", 5.0)]
    table = render_table(results)
    assert table.splitlines()[2].split()[:3] == ["connect", "pass", "12"]
    assert "1 passed, 1 failed, 1 skipped" in table
    assert max(len(line) for line in table.splitlines()) < 140  # long details wrap
    path = tmp_path / "out.json"
    write_json(path, "wss://h/dev", results)
    document = json.loads(path.read_text())
    assert document["passed"] is False and document["url"] == "wss://h/dev"
    assert document["checks"][0] == {"name": "connect", "status": "pass",
                                     "detail": "connection accepted", "ms": 12.3}
    assert document["checks"][1]["ms"] is None


def test_check_names_are_the_documented_ones() -> None:
    assert CHECK_NAMES == ("connect", "echo", "unknown-action", "invalid-frame", "chat", "ack",
                           "message-too-big", "prune-410", "publish", "auth", "connect-roster",
                           "subprotocol", "disconnect-status", "ping", "alarm")

