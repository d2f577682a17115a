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


def test_the_bench_reports_the_twins_cpu_per_member_and_how_busy_its_process_was() -> None:
    import os
    import sys

    from loadtest.bench_join_storm import format_twin_cpu, twin_cpu
    from loadtest.proc_cpu import TreeCpu

    cpu = twin_cpu((3.0, 1.5), 1000, 4.0)
    assert cpu == {"serverMsPerMember": 3.0, "functionsMsPerMember": 1.5, "serverBusy": 0.75,
                   "wallS": 4.0}
    assert format_twin_cpu({**cpu, "serverPeakBusy": 0.97}) == (
        "twin CPU per member: 3.00 ms in its process, 1.50 ms in its function workers; its "
        "process 75 % busy (of one core) over the storm's 4 s, 97 % in its busiest 1 s")
    assert twin_cpu((1.0, 0.0), 10, 0.0)["serverBusy"] == 0.0  # no wall time: no ratio
    with_client = {**cpu, "serverPeakBusy": 0.97, "clientMsPerMember": 1.5}
    assert format_twin_cpu(with_client, 500, 10).endswith(
        "+ 1.50 ms in the load generator = 6.00 ms per member")  # fixed costs: no pace
    assert format_twin_cpu(with_client, 500, 1000).endswith(
        f"+ 1.50 ms in the load generator = 6.00 ms per member: 3.0 cores at 500 members/s, on "
        f"a machine of {os.cpu_count() or 1}")

    if not sys.platform.startswith("linux"):
        pytest.skip("the CPU is read from /proc")
    before = TreeCpu.sample(os.getpid())
    assert before is not None
    spent = {"serverMsPerMember": 0.0}
    for _ in range(500):  # CPU in this process until a clock tick shows it (bounded)
        sum(i * i for i in range(100_000))
        after = TreeCpu.sample(os.getpid())
        assert after is not None
        spent = twin_cpu(after.since(before), 1, 1.0)
        if spent["serverMsPerMember"] > 0:
            break
    assert spent["serverMsPerMember"] > 0.0 and spent["functionsMsPerMember"] == 0.0


def test_the_twins_peak_busy_is_its_busiest_second() -> None:
    from loadtest.bench_join_storm import peak_busy

    # (wall s, CPU s) every 0.25 s: idle, then one second at a full core, then half a core
    samples, cpu = [], 0.0
    for k in range(20):
        t = k * 0.25
        samples.append((t, cpu))
        cpu += 0.0 if t < 1.0 else 0.25 if t < 2.0 else 0.125
    assert peak_busy(samples) == 1.0
    assert peak_busy(samples[:4]) == 0.0  # idle
    assert peak_busy(samples[:2]) == 0.0  # shorter than the window: no figure
    assert peak_busy(samples[10:]) == 0.5
