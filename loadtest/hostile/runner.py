"""Runs the hostile cases against a WebSocket URL and judges each answer; then liveness checks."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest.hostile.cases import MISSING, Case, Expect
from loadtest.hostile.rawws import OP_PING, HandshakeError, RawWebSocket
from pipeline.aws.limits import REGION

REPLY_TIMEOUT_S = 15.0  # the whole pipeline (stream, poller, worker cold start) answers well within
QUIET_S = 3.0  # how long "nothing" is waited for
ALIVE_TIMEOUT_S = 5.0
CONCURRENCY = 12


@dataclass
class Observation:
    """What one connection got back."""

    replies: list[Any] = field(default_factory=list)  # parsed JSON, or the raw text
    close: tuple[int | None, str] | None = None
    eof: bool = False
    pongs: int = 0
    survived: bool = False
    refused: str = ""  # the upgrade was refused
    seconds: float = 0.0

    def summary(self) -> str:
        """One table cell: replies, close code + reason, or nothing."""
        parts: list[str] = []
        if self.refused:
            parts.append(f"upgrade refused ({self.refused})")
        detailed = len(self.replies) <= 3
        counts = Counter(_describe_reply(r, detailed) for r in self.replies)
        parts += [what if n == 1 else f"{what} x{n}" for what, n in counts.items()]
        if self.pongs:
            parts.append(f"{self.pongs} pongs")
        if self.close is not None:
            code, reason = self.close
            parts.append(f"close {code}" + (f" {reason!r}" if reason else ""))
        elif self.eof and not self.survived:
            parts.append("connection dropped, no close frame")
        return ", ".join(parts) or f"nothing within {QUIET_S:.0f} s"


@dataclass(frozen=True)
class Result:
    case: Case
    observation: Observation
    problem: str  # empty when the answer is the documented one

    @property
    def ok(self) -> bool:
        return not self.problem


def _describe_reply(reply: Any, detailed: bool = False) -> str:
    if not isinstance(reply, dict):
        return f"non-JSON {str(reply)[:40]!r}"
    if reply.get("action") == "error":
        shown = f"error {reply.get('error')}"
        if detailed and "received" in reply:
            shown += f" (received {_short(reply['received'])})"
        return shown
    if detailed and reply.get("action") == "echo":
        return f"echo {_short(reply.get('data'))}"
    if "action" in reply:
        return str(reply["action"])
    if "message" in reply:
        return f"gateway {reply['message']!r}"
    return "reply " + orjson.dumps(reply).decode()[:40]


def _short(value: Any, limit: int = 24) -> str:
    # Line separators would break the printed table's rows.
    text = orjson.dumps(value).decode().replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


def _parse(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


async def observe(ws: RawWebSocket, expect: Expect) -> Observation:
    """Collect answers until the expectation can be judged (or the deadline)."""
    obs = Observation()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (QUIET_S if expect.silent else REPLY_TIMEOUT_S)
    matched = 0
    while (remaining := deadline - loop.time()) > 0:
        event = await ws.recv(remaining)
        if event.kind == "text":
            reply = _parse(event.text)
            obs.replies.append(reply)
            matched += expect.matches(reply)
            if not expect.silent and expect.close is None and matched >= expect.count:
                break
        elif event.kind == "pong":
            obs.pongs += 1
        elif event.kind == "close":
            obs.close = (event.code, event.text)
            break
        elif event.kind == "eof":
            obs.eof = True
            break
        elif event.kind == "timeout":
            break
    if obs.close is None and not obs.eof:
        obs.survived = await _alive(ws, obs)
    return obs


async def _alive(ws: RawWebSocket, obs: Observation) -> bool:
    """Whether the connection still answers a ping (text frames meanwhile are kept)."""
    try:
        await ws.send(OP_PING, b"alive?")
    except (ConnectionError, RuntimeError):
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ALIVE_TIMEOUT_S
    while (remaining := deadline - loop.time()) > 0:
        event = await ws.recv(remaining)
        if event.kind == "pong" and event.data == b"alive?":
            return True
        if event.kind == "pong":
            obs.pongs += 1
        elif event.kind == "text":
            obs.replies.append(_parse(event.text))
        elif event.kind in ("close", "eof", "timeout"):
            if event.kind == "close":
                obs.close = (event.code, event.text)
            return False
    return False


def _is_ack(reply: Any) -> bool:
    return isinstance(reply, dict) and reply.get("action") == "ack"


def judge(expect: Expect, obs: Observation) -> str:
    """Empty when *obs* is the documented answer, else what differs."""
    if obs.refused:
        return "the upgrade was refused"
    if expect.close is not None:
        got = obs.close[0] if obs.close else None
        return "" if got == expect.close else f"expected close {expect.close}, got {got}"
    if obs.close is not None or not obs.survived:
        return "the connection did not survive"
    matched = [r for r in obs.replies if expect.matches(r)]
    # The gateway's ack on an acked route (chat send, docs/acks.md) precedes the consumer's answer.
    others = [r for r in obs.replies if not expect.matches(r) and not _is_ack(r)]
    if others:
        return f"unexpected replies: {[_describe_reply(r) for r in others][:3]}"
    if expect.silent:
        return "" if obs.pongs >= expect.pongs else f"{obs.pongs}/{expect.pongs} pongs"
    if len(matched) != expect.count:
        return f"{len(matched)}/{expect.count} replies"
    if expect.in_order and [r.get("data") for r in matched] != list(range(expect.count)):
        return "replies out of order"
    for name in ("data", "received"):
        want = getattr(expect, name)
        if want is not MISSING and any(r.get(name) != want for r in matched):
            return f"{name} differs: {str(matched[0].get(name))[:60]!r}"
    return ""


async def run_case(url: str, case: Case) -> Result:
    """One case on a fresh connection."""
    started = time.monotonic()
    try:
        ws = await RawWebSocket.connect(url)
    except (HandshakeError, OSError, TimeoutError) as exc:
        obs = Observation(refused=str(exc))
        return Result(case, obs, judge(case.expect, obs))
    try:
        await case.send(ws)
        if case.expect.drop:
            obs = Observation(eof=True)
            return Result(case, obs, "")
        obs = await observe(ws, case.expect)
    except (ConnectionError, RuntimeError):
        obs = Observation(eof=True)  # the gateway hung up while we were still sending
    finally:
        await ws.close()
    obs.seconds = time.monotonic() - started
    return Result(case, obs, judge(case.expect, obs))


async def run_cases(url: str, cases: list[Case], concurrency: int = CONCURRENCY) -> list[Result]:
    """Every case, at most *concurrency* connections at a time; results in case order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> Result:
        async with gate:
            return await run_case(url, case)

    return list(await asyncio.gather(*(one(c) for c in cases)))


async def liveness(url: str) -> list[tuple[str, str]]:
    """Valid frames on a fresh connection: (check, problem or "") for echo, join and fallback."""
    checks = [
        ("echo", '{"action":"echo","data":{"still":"alive"}}',
         Expect(action="echo", data={"still": "alive"})),
        ("chat join", '{"action":"join","room":"hostile-check"}', Expect(action="joined")),
        ("fallback", '{"action":"nope"}', Expect(error="unknown_action", received="nope")),
    ]
    out: list[tuple[str, str]] = []
    for name, frame, expect in checks:
        try:
            ws = await RawWebSocket.connect(url)
        except (HandshakeError, OSError, TimeoutError) as exc:
            out.append((name, f"cannot connect: {exc}"))
            continue
        try:
            await ws.send_text(frame)
            out.append((name, judge(expect, await observe(ws, expect))))
        finally:
            await ws.close()
    return out


def failure_queue_depths(aws_url: str) -> dict[str, int]:
    """Messages in each on-failure (SQS) destination of the twin: a record that reached one was
    not handled. Names end in ``OnFailure...`` (the stack's naming)."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=aws_url, region_name=REGION,
                       aws_access_key_id="hostile", aws_secret_access_key="hostile")
    depths: dict[str, int] = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        if "OnFailure" not in url:
            continue
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        depths[url.rsplit("/", 1)[-1]] = sum(int(v) for v in attrs.values())
    return depths


def table(results: list[Result]) -> str:
    """The Markdown table the run prints."""
    lines = ["| # | kind | expected | got | connection | ok | note |",
             "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(results, 1):
        obs = r.observation
        alive = "survived" if obs.survived else "client dropped" if r.case.expect.drop else "closed"
        ok = "yes" if r.ok else f"**NO**: {r.problem}"
        cells = [str(i), r.case.kind, r.case.expect.describe(), obs.summary(), alive, ok,
                 r.case.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
