"""End to end on loopback: the runner against tiny in-test servers (about a second each)."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from loadtest.config import RunConfig
from loadtest.echo_server import EchoServer
from loadtest.runner import LoadRun, pad_frame


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    server = EchoServer()
    url = await server.start()
    yield url
    await server.stop()


def _cfg(**kw: object) -> RunConfig:
    base: dict[str, object] = {"connections": 3, "rate": 60, "duration": 1.0, "ramp": 1000,
                               "drain": 2.0, "payload": 200, "progress": False}  # fmt: skip
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


async def test_echo_round_trip_accounts_every_frame(echo_url: str) -> None:
    report = await LoadRun(_cfg(), echo_url, out=io.StringIO()).run()
    t = report.totals
    assert (t["connectionsOpened"], t["sent"], t["expected"], t["received"]) == (3, 60, 60, 60)
    assert (t["lost"], t["duplicated"], t["outOfOrder"], t["errorFrames"]) == (0, 0, 0, 0)
    assert report.histograms["latency"].get_total_count() == 60
    assert report.histograms["stage:clientToGateway"].get_total_count() == 60
    assert dict(report.close_codes) == {"1000": 3}
    assert [c["sent"] for c in report.connections] == [20, 20, 20]
    assert report.meta["clock"] == "same-host"


async def test_chat_rooms_deliver_to_every_other_member(echo_url: str) -> None:
    cfg = _cfg(scenario="chat", connections=6, room_size=3, rate=60, duration=0.5)
    report = await LoadRun(cfg, echo_url, out=io.StringIO()).run()
    t = report.totals
    assert t["sent"] == 30
    assert t["expected"] == 60  # each frame reaches the two other members of its room
    assert (t["received"], t["lost"], t["duplicated"]) == (60, 0, 0)
    assert "join_failed" not in report.errors


async def test_broadcast_counts_each_receipt_and_discounts_failed_publishes() -> None:
    server = EchoServer()
    url = await server.start()

    async def publish(body: dict[str, Any]) -> None:
        if body["s"] == 3:
            raise RuntimeError("throttled")
        await server.broadcast(body)

    try:
        cfg = _cfg(scenario="broadcast", connections=4, rate=20, duration=0.5)
        report = await LoadRun(cfg, url, publish=publish, out=io.StringIO()).run()
    finally:
        await server.stop()
    t = report.totals
    assert t["sent"] == 9  # 10 publishes, one failed
    assert (t["expected"], t["received"], t["lost"]) == (36, 36, 0)
    assert report.errors["publish:RuntimeError"] == 1


async def _faulty(ws: ServerConnection) -> None:
    """Echo, but drop seq%5==4, duplicate seq%5==0 and answer seq 7 with an error frame."""
    async for message in ws:
        data = orjson.loads(message)["data"]
        reply = orjson.dumps({"action": "echo", "data": data}).decode()
        seq = data["s"]
        if seq == 7:
            await ws.send('{"action":"error","error":"invalid_request","message":"no"}')
        elif seq % 5 == 4:
            continue
        else:
            await ws.send(reply)
            if seq % 5 == 0:
                await ws.send(reply)


async def test_loss_duplicates_and_error_frames_are_reported() -> None:
    async with serve(_faulty, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        cfg = _cfg(connections=2, rate=40, duration=0.5, drain=0.3)
        report = await LoadRun(cfg, f"ws://127.0.0.1:{port}/dev", out=io.StringIO()).run()
    t = report.totals
    assert t["sent"] == 20  # seq 0..9 on each connection
    assert t["lost"] == 6  # seq 4, 7, 9 on each
    assert t["duplicated"] == 4  # seq 0, 5 on each
    assert t["received"] == 14
    assert t["errorFrames"] == 2 and report.errors["invalid_request"] == 2
    assert [c["lost"] for c in report.connections] == [3, 3]


async def test_unreachable_target_is_reported_not_raised() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        report = await LoadRun(
            _cfg(connections=2, connect_timeout=2.0), f"ws://127.0.0.1:{port}/dev", out=io.StringIO()
        ).run()
    assert report.totals["connectionsOpened"] == 0
    assert report.totals["connectFailed"] == 2
    assert report.errors["connect:ConnectionRefusedError"] == 2
    assert report.totals["sent"] == 0


async def test_malformed_replies_are_counted_not_fatal() -> None:
    async def garbage(ws: ServerConnection) -> None:
        async for message in ws:
            data = orjson.loads(message)["data"]
            await ws.send(b"\xff\x00 not json")
            bad_time = {"r": data["r"], "c": 0, "s": 0, "t": "x", "a": 1}
            await ws.send(orjson.dumps({"action": "echo", "data": bad_time}).decode())
            await ws.send('{"action":"mystery"}')
            await ws.send('{"action":"presence","room":"r","joined":"x"}')
            await ws.send(orjson.dumps({"action": "echo", "data": data}).decode())

    async with serve(garbage, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        cfg = _cfg(connections=1, rate=20, duration=0.25)
        report = await LoadRun(cfg, f"ws://127.0.0.1:{port}/dev", out=io.StringIO()).run()
    t = report.totals
    assert (t["sent"], t["received"], t["lost"]) == (5, 5, 0)
    assert report.errors["unrecognised_frame"] == 10  # the binary garbage and the unknown action
    assert t["presenceFrames"] == 5  # chat's presence events are counted, not errors
    assert report.errors["foreign_or_malformed"] == 5


def test_frames_are_padded_to_the_payload_size() -> None:
    frame = pad_frame(lambda p: {"action": "echo", "data": {"p": p}}, 500)
    assert len(frame.encode()) == 500
    assert pad_frame(lambda p: {"action": "echo", "p": p}, 3) == '{"action":"echo","p":""}'


async def test_warm_up_runs_first_on_its_own_connections_and_is_not_recorded(
    echo_url: str,
) -> None:
    from loadtest.config import parse_run_args
    from loadtest.report import format_summary

    assert parse_run_args([]).warmup == 3.0  # the command line warms up by default
    out = io.StringIO()
    report = await LoadRun(_cfg(warmup=0.5), echo_url, out=out).run()
    t = report.totals
    assert (t["connectionsOpened"], t["sent"], t["received"], t["lost"]) == (3, 60, 60, 0)
    assert report.histograms["latency"].get_total_count() == 60
    assert sum(w.sent for w in report.windows.values()) == 60
    assert report.meta["warmupS"] == 0.5
    assert report.meta["warmup"] == {"connections": 3, "sent": 30, "received": 30}
    assert "warm-up: 0.5 s on 3 connections, not recorded" in out.getvalue()
    assert ("warm-up  0.5 s before measuring, not recorded: 3 connections, 30 frames sent, "
            "30 answered") in format_summary(report)
    cold = await LoadRun(_cfg(), echo_url, out=io.StringIO()).run()
    assert "warm-up  none: the first seconds include cold starts" in format_summary(cold)
