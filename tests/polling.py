"""Waiting on a condition with a deadline, for tests: the one ``until`` of the suite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

POLL_S = 0.005


async def until(predicate: Callable[[], bool], timeout: float = 3.0, *,
                wake: asyncio.Event | None = None, poll: float = POLL_S) -> None:
    """Wait for *predicate* to hold, failing after *timeout* seconds.

    Without *wake*, the predicate is re-checked every *poll* seconds. With *wake* (an event the
    subject sets whenever something observable happened), it is re-checked each time the event
    is set, and at least every *poll* seconds for what happens without a notification.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError("condition not met before the deadline")
        if wake is None:
            await asyncio.sleep(min(poll, remaining))
            continue
        wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(remaining, poll)):
                await wake.wait()
