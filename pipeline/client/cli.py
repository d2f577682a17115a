"""``python -m pipeline client [FRAME ...]``: send frames to a stage and print every reply.

A scripted client for a first try: it sends each FRAME (or, without any, each non-empty line of
stdin) in order and keeps printing what arrives until nothing has come for ``--wait`` seconds,
so replies that come back through the stream are not cut off (``printf ... | python -m
websockets`` closes as soon as stdin ends, before any reply). Sent frames are printed as
``> frame``, received ones as ``< frame``; a close by the server prints its code and reason.
With ``--expect N`` it stops as soon as N replies came (a script waits no longer than it must;
``--wait`` then bounds how long it waits for them, per reply).

Exit status: 0 when the conversation ended quietly (and ``--expect N`` replies came); 1 when the
stage cannot be reached, the handshake is refused, the server closed the connection, or fewer
than ``--expect`` replies came; 2 for a usage error. A token (``--token`` or ``?token=`` in the
URL) is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from pipeline.names import twin_ws_url

DEFAULT_URL = twin_ws_url()
DEFAULT_WAIT_S = 2.0
AUTHORIZER_LOG = ".twin/logs/ConnectAuthorization.log"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The ``client`` command's arguments."""
    parser.add_argument("frames", nargs="*", metavar="FRAME",
                        help="text frames to send, in order (default: the lines of stdin)")
    parser.add_argument("--url", default=DEFAULT_URL,
                        help=f"the stage's WebSocket URL (default {DEFAULT_URL}, `make local`)")
    parser.add_argument("--token", default=None,
                        help="a token for the $connect authorizer, sent as ?token= (never "
                             "printed); `python -m pipeline token --sub NAME` mints one")
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT_S, metavar="SECONDS",
                        help="stop after this long without a reply (default "
                             f"{DEFAULT_WAIT_S:g}); replies come asynchronously, via the stream")
    parser.add_argument("--expect", type=int, default=None, metavar="N",
                        help="stop once N replies came; exit 1 if fewer came")


@dataclass
class Conversation:
    """What came back: the replies, and the server's close (code, reason) if it closed."""

    received: list[str] = field(default_factory=list)
    closed_by_server: tuple[int, str] | None = None


async def converse(url: str, frames: Sequence[str], wait_s: float,
                   enough: int | None = None) -> Conversation:
    """Send ``frames`` and collect (and print) every message received until ``wait_s`` of
    quiet, ``enough`` replies, or the server closing the connection."""
    talk = Conversation()
    async with connect(url, open_timeout=10, ping_interval=None, max_size=None) as ws:
        try:
            for frame in frames:
                print(f"> {frame}", flush=True)
                await ws.send(frame)
            while enough is None or len(talk.received) < enough:
                try:
                    message = await asyncio.wait_for(ws.recv(), wait_s)
                except TimeoutError:
                    break
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                talk.received.append(text)
                print(f"< {text}", flush=True)
        except ConnectionClosed as exc:
            close = exc.rcvd
            talk.closed_by_server = (close.code, close.reason) if close else (1006, "")
    return talk


def with_token(url: str, token: str | None) -> str:
    """*url* with ``token`` as its ``token`` query parameter (replacing one already there)."""
    if token is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def redacted(url: str) -> str:
    """*url* as it may be printed: a ``token`` parameter's value replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, "***" if k == "token" else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def has_token(url: str) -> bool:
    return any(k == "token" and v for k, v in parse_qsl(urlsplit(url).query,
                                                        keep_blank_values=True))


def refusal(url: str, status: int) -> str:
    """The one line for a refused handshake: which part refused it, and where its reason is.

    API Gateway refuses a connect that lacks the authorizer's identity source with 401 before
    the authorizer runs; the authorizer's Deny is 403. Without a token, a 403 is most often a
    stage the API does not have."""
    where = redacted(url)
    if status == 401:
        return (f"{where}: refused by the $connect authorizer's identity source (HTTP 401): "
                "no token was sent; pass --token (`python -m pipeline token --sub NAME` "
                "mints one for the twin)")
    if status == 403 and has_token(url):
        return (f"{where}: refused by the $connect authorizer (HTTP 403): the token was not "
                f"accepted; the reason is in the authorizer's log (the twin: {AUTHORIZER_LOG}; "
                "AWS: its CloudWatch log group)")
    hint = f" (a wrong stage path? `make local` serves {DEFAULT_URL})" \
        if status == 403 else ""
    return f"{where}: the handshake was refused with HTTP {status}{hint}"


def outcome(talk: Conversation, expect: int | None) -> tuple[int, list[str]]:
    """The exit status and the lines for stderr, from what happened."""
    lines = []
    status = 0
    if talk.closed_by_server is not None:
        code, reason = talk.closed_by_server
        lines.append(f"closed by the server: {code}" + (f" {reason}" if reason else ""))
        status = 1
    if expect is not None and len(talk.received) < expect:
        lines.append(f"expected {expect} replies, got {len(talk.received)}")
        status = 1
    return status, lines


def run(args: argparse.Namespace) -> int:
    """Run the conversation; see the module's docstring for the exit status."""
    if not args.wait > 0:
        print("--wait must be a positive number of seconds", file=sys.stderr)
        return 2
    if args.expect is not None and args.expect < 0:
        print("--expect must be >= 0", file=sys.stderr)
        return 2
    url = with_token(args.url, args.token)
    frames = list(args.frames) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    try:
        talk = asyncio.run(converse(url, frames, args.wait, enough=args.expect or None))
    except InvalidStatus as exc:
        print(refusal(url, exc.response.status_code), file=sys.stderr)
        return 1
    except InvalidURI:
        print(f"{redacted(url)} is not a ws:// or wss:// URL", file=sys.stderr)
        return 2
    except (OSError, TimeoutError, WebSocketException) as exc:
        print(f"cannot connect to {redacted(url)} ({type(exc).__name__}: {exc}): is the twin "
              "running? start it with `make local`", file=sys.stderr)
        return 1
    status, lines = outcome(talk, args.expect)
    for line in lines:
        print(line, file=sys.stderr)
    return status
