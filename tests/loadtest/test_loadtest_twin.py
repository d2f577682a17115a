"""The echo scenario through the real local twin (shares the session's twin)."""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import pytest

from loadtest.config import RunConfig
from loadtest.runner import LoadRun

pytestmark = [
    pytest.mark.twin,
    pytest.mark.skipif(
        importlib.util.find_spec("pipeline.local.cli") is None,
        reason="the local twin (pipeline.local.cli) does not exist yet",
    ),
]


async def test_echo_through_the_twin_loses_nothing(twin: Any) -> None:
    cfg = RunConfig(connections=4, rate=40, duration=1.0, drain=10.0, ramp=1000, progress=False)
    report = await LoadRun(cfg, twin.ws, out=io.StringIO()).run()
    t = report.totals
    assert t["connectionsOpened"] == 4
    assert t["sent"] == 40
    assert (t["received"], t["lost"], t["outOfOrder"], t["errorFrames"]) == (40, 0, 0, 0)
    # the echo consumer returns its timing fields: the round trip splits into stages
    assert report.histograms["stage:streamToConsumer"].get_total_count() == 40
