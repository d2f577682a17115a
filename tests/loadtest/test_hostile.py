"""The hostile-input cases, in-process against the session twin: each gets its documented answer
(the fallback/chat error code, or the gateway's close code) and the pipeline still answers valid
frames afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loadtest.hostile import cases, runner
from loadtest.hostile.__main__ import main
from loadtest.hostile.rawws import OP_TEXT, HandshakeError, RawWebSocket

CASES = cases.build()


@pytest.fixture(scope="module")
def failure_queues_before(twin: Any) -> dict[str, int]:
    return runner.failure_queue_depths(twin.aws)


@pytest.fixture(scope="module")
def results(twin: Any, failure_queues_before: dict[str, int]) -> dict[str, runner.Result]:
    """Every case run once, concurrently (the whole suite takes a few seconds)."""
    done = asyncio.run(runner.run_cases(twin.ws, CASES))
    return {r.case.kind: r for r in done}


def test_the_suite_is_broad() -> None:
    kinds = [c.kind for c in CASES]
    assert len(kinds) == len(set(kinds)) >= 30
    closes = {c.expect.close for c in CASES}
    assert {1002, 1003, 1007, 1009} <= closes


@pytest.mark.parametrize("kind", [c.kind for c in CASES])
def test_case_gets_its_documented_answer(results: dict[str, runner.Result], kind: str) -> None:
    result = results[kind]
    assert result.ok, f"{kind}: {result.problem} (got {result.observation.summary()})"
    expect, obs = result.case.expect, result.observation
    if expect.close is not None:
        assert obs.close is not None and obs.close[0] == expect.close
        assert not obs.survived
    elif not expect.drop:
        assert obs.survived and obs.close is None


def test_frame_limits_follow_aws(results: dict[str, runner.Result]) -> None:
    # One frame of 32 KB + 1 byte closes 1009; 4 frames of 32 KB (128 KB) are one valid message.
    assert results["single frame > 32 KB"].observation.close == (1009, "")
    big = results["message of exactly 128 KB (4 x 32 KB)"].observation
    assert [r["received"] for r in big.replies] == ["nope"]


def test_burst_is_answered_in_order(results: dict[str, runner.Result]) -> None:
    replies = results[f"burst of {cases.BURST} echo frames"].observation.replies
    assert [r["data"] for r in replies] == list(range(cases.BURST))


def test_spoofed_fields_do_not_reach_the_envelope(results: dict[str, runner.Result]) -> None:
    # The echo came back to the real sender, with the timing of a MESSAGE (not a DISCONNECT).
    reply = results["spoofed connectionId/routeKey/requestId"].observation.replies[0]
    assert reply["data"] == "mine" and reply["timing"]["gatewayMs"] > 0


def test_valid_frames_are_answered_afterwards(results: dict[str, runner.Result],
                                              twin: Any) -> None:
    assert len(results) == len(CASES)  # the suite ran first
    checks = asyncio.run(runner.liveness(twin.ws))
    assert [name for name, _ in checks] == ["echo", "chat join", "fallback"]
    assert checks == [(name, "") for name, _ in checks]
    assert twin.process.poll() is None


def test_no_record_reached_an_on_failure_queue(
        results: dict[str, runner.Result], twin: Any, failure_queues_before: dict[str, int]) -> None:
    after = runner.failure_queue_depths(twin.aws)
    assert len(after) == 6  # echo, chat, fallback, broadcast, fanout, presence
    assert after == {q: failure_queues_before.get(q, 0) for q in after}


def test_cli_against_a_running_twin(results: dict[str, runner.Result], twin: Any,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", twin.ws, "--aws-endpoint", twin.aws]) == 0
    out = capsys.readouterr().out
    assert f"{len(CASES)} cases in" in out and "pipeline healthy afterwards" in out
    assert "- on-failure queues (6): no record failed" in out


def test_table_has_one_row_per_case(results: dict[str, runner.Result]) -> None:
    table = runner.table(list(results.values())).splitlines()
    assert len(table) == 2 + len(CASES)
    assert all(row.split(" | ")[5] == "yes" for row in table[2:])


def test_judge_reports_a_wrong_answer() -> None:
    expect = cases.Expect(error="invalid_frame")
    obs = runner.Observation(replies=[{"action": "echo", "data": 1}], survived=True)
    assert runner.judge(expect, obs).startswith("unexpected replies")
    assert runner.judge(cases.Expect(close=1009), runner.Observation(survived=True)) == (
        "expected close 1009, got None")


async def test_raw_client_reports_a_refused_upgrade(twin: Any) -> None:
    with pytest.raises(HandshakeError) as refused:
        await RawWebSocket.connect(twin.ws.rsplit("/", 1)[0] + "/nostage", timeout=5)
    assert refused.value.status == 403
    ws = await RawWebSocket.connect(twin.ws, timeout=5)
    await ws.send(OP_TEXT, b"")
    assert (await ws.recv(15)).kind == "text"
    await ws.close()


def test_cli_refuses_a_bad_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:1/dev"]) == 2
    assert "ws:// or wss://" in capsys.readouterr().err
    assert main(["--url", "ws://127.0.0.1:1/dev", "--concurrency", "0"]) == 2
