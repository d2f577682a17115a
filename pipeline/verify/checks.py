"""The checks that need only a WebSocket client, and the state the checks share (:class:`Session`).

Each check is ``async (Session) -> str``: it returns what it saw (pass), or raises
:class:`CheckFailed` / :class:`CheckSkipped` with what it saw or why it cannot run. Every wait
ends at :attr:`Session.deadline`. Frames a check waits for are those after a mark taken before
it sent, so a late answer to an earlier check is never taken for its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidStatus

from pipeline.aws.limits import WEBSOCKET_MESSAGE_BYTES
from pipeline.verify.client import Client
from pipeline.verify.report import CheckFailed, CheckSkipped
from pipeline.verify.target import AwsAccess, Target

MAX_MESSAGE_BYTES = WEBSOCKET_MESSAGE_BYTES
FRAGMENT_CHARS = 16 * 1024  # well under the 32 KB frame limit
OFFERED_SUBPROTOCOL = "pipeline.verify"


@dataclass
class Session:
    """What the checks of one run share: the target, the open connections, learned ids."""

    target: Target
    deadline: float = 0.0  # the running check's deadline (event loop time)
    nonce: str = field(default_factory=lambda: secrets.token_hex(4))
    a: Client | None = None  # the main connection (connect, echo, chat sender)
    b: Client | None = None  # the other chat member
    a_id: str | None = None  # learned from the messages the other member receives
    b_id: str | None = None
    ack_start: int | None = None  # index in a.frames before the chat send that must be acked
    in_room: bool = False  # a and b joined :attr:`room`
    clients: list[Client] = field(default_factory=list)

    @property
    def room(self) -> str:
        return f"verify-{self.nonce}"

    def remaining(self) -> float:
        return max(self.deadline - asyncio.get_running_loop().time(), 0.0)

    async def open(self, url: str | None = None, headers: list[tuple[str, str]] | None = None,
                   **kwargs: Any) -> Client:
        """Connect (the target's URL, query and headers unless given); refusals -> CheckFailed."""
        try:
            client = await Client.open(url or self.target.connect_url,
                                       self.target.headers if headers is None else headers,
                                       self.remaining(), **kwargs)
        except Exception as exc:
            raise CheckFailed(refusal(exc)) from exc
        self.clients.append(client)
        return client

    def need_a(self) -> Client:
        if self.a is None:
            raise CheckSkipped("no open connection: the connect check failed")
        if self.a.closed:
            raise CheckSkipped(f"the server closed the connection ({self.a.close_code}); "
                               f"it last got {self.a.describe()}")
        return self.a

    def need_aws(self) -> AwsAccess:
        if self.target.aws is None:
            raise CheckSkipped(self.target.no_aws)
        return self.target.aws

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)


def refusal(exc: BaseException) -> str:
    """What a failed WebSocket handshake looked like, for a check's detail."""
    if isinstance(exc, InvalidStatus):
        return f"refused with HTTP {exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return "no handshake answer before the deadline"
    if isinstance(exc, InvalidHandshake):
        return f"handshake failed: {exc}"
    return f"cannot connect: {type(exc).__name__}: {exc}"


def is_action(frame: Any, action: str, **fields: Any) -> bool:
    """``frame`` is a JSON object with this ``action`` and these field values."""
    return (isinstance(frame, dict) and frame.get("action") == action
            and all(frame.get(k) == v for k, v in fields.items()))


async def check_connect(s: Session) -> str:
    s.a = await s.open()
    return "connection accepted"


async def check_echo(s: Session) -> str:
    a = s.need_a()
    data = {"verify": s.nonce, "text": "caf\u00e9 \u2713 </script>"}
    mark = len(a.frames)
    await a.send({"action": "echo", "data": data})
    _, frame = await a.expect(lambda f: is_action(f, "echo"), "echo reply", s.deadline, mark)
    if frame.get("data") != data:
        raise CheckFailed(f"echo reply carried {frame.get('data')!r}, sent {data!r}")
    return "the reply carried the data sent"


async def check_ping(s: Session) -> str:
    """The keepalive: API Gateway itself answers ``ping`` (a MOCK integration, route response)."""
    a = s.need_a()
    mark = len(a.frames)
    await a.send({"action": "ping"})
    _, frame = await a.expect(lambda f: is_action(f, "pong"), "pong", s.deadline, mark)
    if frame != {"action": "pong"}:
        raise CheckFailed(f"expected exactly {{'action': 'pong'}}, got {frame!r}")
    return "answered pong by the gateway (MOCK integration)"


async def _expect_error(s: Session, frame: Any, code: str) -> str:
    a = s.need_a()
    mark = len(a.frames)
    await a.send(frame)
    _, reply = await a.expect(lambda f: is_action(f, "error"), "error frame", s.deadline, mark)
    if reply.get("error") != code:
        raise CheckFailed(f"expected error {code!r}, got {reply!r}")
    return f"error {code!r}: {reply.get('message', '')}"


async def check_unknown_action(s: Session) -> str:
    return await _expect_error(s, {"action": f"verify-unknown-{s.nonce}"}, "unknown_action")


async def check_invalid_frame(s: Session) -> str:
    return await _expect_error(s, f"not JSON {s.nonce}", "invalid_frame")


async def _join(s: Session, client: Client, room: str) -> None:
    mark = len(client.frames)
    await client.send({"action": "join", "room": room})
    await client.expect(lambda f: is_action(f, "joined", room=room), f"'joined' for {room}",
                        s.deadline, mark)


async def check_chat(s: Session) -> str:
    a = s.need_a()
    s.b = b = await s.open()
    room = s.room
    await _join(s, a, room)
    await _join(s, b, room)
    s.in_room = True
    text = f"verify {s.nonce} from a"
    mark_a, mark_b = len(a.frames), len(b.frames)
    s.ack_start = mark_a
    await a.send({"action": "send", "room": room, "text": text})
    # A second join is answered after anything the send produced for the sender (one shard,
    # in order; posts to one connection go out in stream order): a barrier, not a sleep.
    await a.send({"action": "join", "room": room})
    _, got = await b.expect(lambda f: is_action(f, "message", room=room, text=text),
                            "message at the other member", s.deadline, mark_b)
    s.a_id = str(got.get("from") or "") or None
    barrier, _ = await a.expect(lambda f: is_action(f, "joined", room=room),
                                "reply to the sender's next frame", s.deadline, mark_a)
    if any(is_action(f, "message", text=text) for f in a.frames[mark_a:barrier]):
        raise CheckFailed("the sender received its own message")
    back = f"verify {s.nonce} from b"
    mark_a = len(a.frames)
    await b.send({"action": "send", "room": room, "text": back})
    _, got = await a.expect(lambda f: is_action(f, "message", room=room, text=back),
                            "message sent back by the other member", s.deadline, mark_a)
    s.b_id = str(got.get("from") or "") or None
    return f"delivered both ways in room {room} (from {s.a_id} and {s.b_id}), not to the sender"


async def check_message_too_big(s: Session) -> str:
    # Compression off, so the frames on the wire are the sizes sent (docs/hostile-input.md).
    c = await s.open(compression=None)
    text = '{"action":"echo","data":"' + "x" * MAX_MESSAGE_BYTES + '"}'
    with contextlib.suppress(Exception):  # the server may close while the message is in flight
        await c.send_fragments(text[i:i + FRAGMENT_CHARS]
                               for i in range(0, len(text), FRAGMENT_CHARS))
    code = await c.wait_closed(s.deadline)
    reason = c.ws.close_reason or ""
    if code != 1009:
        raise CheckFailed(f"a {len(text)}-byte message closed the connection with {code} "
                          f"{reason!r}, expected 1009")
    said = f" {reason!r}" if reason else ""
    return f"a {len(text)}-byte message (16 KB frames) closed the connection with 1009{said}"


async def check_auth(s: Session) -> str:
    s.need_a()  # a stage that refuses every connect proves nothing about auth
    try:
        c = await Client.open(s.target.bare_url, [], s.remaining())
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            return f"a connect without the token/query/headers was refused with {status}"
        raise CheckFailed(f"a connect without credentials was refused with {status}, "
                          "expected 401 or 403") from exc
    except Exception as exc:
        raise CheckFailed(f"a connect without credentials: {refusal(exc)}") from exc
    s.clients.append(c)
    await c.close()
    given = " (the given --query/--header are not needed)" if (
        s.target.query or s.target.headers or s.target.bare_url != s.target.url) else ""
    raise CheckSkipped(f"the stage has no auth on $connect: a bare connect was accepted{given}")


async def check_subprotocol(s: Session) -> str:
    try:
        c = await s.open(subprotocols=[OFFERED_SUBPROTOCOL])
    except CheckFailed as exc:
        raise CheckFailed(f"offering Sec-WebSocket-Protocol {OFFERED_SUBPROTOCOL}: {exc}") from exc
    response = c.ws.response
    answered = response.headers.get("Sec-WebSocket-Protocol") if response else None
    await c.close()
    if answered:
        raise CheckFailed(f"offered {OFFERED_SUBPROTOCOL!r}, the server answered "
                          f"Sec-WebSocket-Protocol: {answered!r}; docs/fidelity.md says it does "
                          "not echo one")
    return (f"offered {OFFERED_SUBPROTOCOL!r}, the answer had no Sec-WebSocket-Protocol "
            "(as documented: a browser offering one would drop this connection)")
