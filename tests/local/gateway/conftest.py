"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gateway_kit import Running, start_gateway


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    run = await start_gateway()
    yield run
    await run.gateway.stop()
