"""The join-storm scenario through the real local twin (shares the session's twin)."""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import pytest

from loadtest.config import NEW_CONNECTIONS_PER_S, parse_run_args
from loadtest.errors import ConfigError
from loadtest.join_storm import failed, run_join_storm
from loadtest.report import Report, format_summary


def test_join_storm_paces_at_the_new_connection_quota_and_needs_a_room() -> None:
    cfg = parse_run_args(["--scenario", "join-storm", "--room-size", "1000"])
    assert (cfg.ramp, cfg.connections, cfg.room_size) == (NEW_CONNECTIONS_PER_S, 1000, 1000)
    assert parse_run_args(["--scenario", "join-storm", "--ramp", "50"]).ramp == 50
    assert parse_run_args(["--scenario", "chat"]).ramp == 200  # other scenarios keep theirs
    with pytest.raises(ConfigError):
        parse_run_args(["--scenario", "join-storm", "--room-size", "1"])


@pytest.mark.twin
@pytest.mark.skipif(importlib.util.find_spec("pipeline.local.cli") is None,
                    reason="the local twin (pipeline.local.cli) does not exist yet")
async def test_a_join_storm_of_ten_is_answered_and_broadcast_to_exactly_once(twin: Any) -> None:
    cfg = parse_run_args(["--scenario", "join-storm", "--room-size", "10", "--no-progress"])
    report = await run_join_storm(cfg, twin.ws, twin.aws, out=io.StringIO())
    storm, t = report.meta["joinStorm"], report.totals
    assert (t["connectionsOpened"], t["connectFailed"]) == (10, 0)
    assert (storm["joined"], storm["joinMissing"]) == (10, 0)
    assert report.histograms["join"].get_total_count() == 10
    assert storm["broadcast"]["exactlyOnce"] == 10
    assert (t["expected"], t["received"], t["lost"], t["duplicated"]) == (10, 10, 0, 0)
    assert report.histograms["latency"].get_total_count() == 10
    # a room under presenceMaxMembers is told of the joins, at most once a window per member
    presence = storm["presence"]
    assert presence["frames"] >= 1 and presence["overBound"] == 0
    assert presence["perMemberMax"] <= presence["boundMax"]
    assert not failed(report)
    again = Report.from_json(report.to_json())
    assert again.meta["joinStorm"] == storm
    assert "join -> joined" in format_summary(again)
