"""Reading a test connection's next reply: presence events and acks come between replies (the
presence consumer, acked routes), so tests that wait for one reply skip them, boundedly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

SKIPPED = ("presence", "ack")


async def next_reply(ws: Any, timeout_s: float, skip: tuple[str, ...] = SKIPPED) -> Any:
    """The next JSON frame whose action is not in *skip* (at most 100 frames are skipped)."""
    for _ in range(100):
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if frame.get("action") not in skip:
            return frame
    raise AssertionError(f"only {'/'.join(skip)} frames")
