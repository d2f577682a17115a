"""The load test on Locust: a master and workers, exact merge, and no gevent in this process.

Locust monkeypatches the standard library when imported, so every Locust process here is a
subprocess; this module imports only loadtest/distributed.py (which never imports Locust).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest import histo
from loadtest.bench import ServerProcess
from loadtest.config import RunConfig, parse_run_args
from loadtest.distributed import LOCUSTFILE, ROW_KEYS, merge_workers, worker_payload
from loadtest.errors import ConfigError
from loadtest.live_broadcast import Publisher
from loadtest.report import Report, format_summary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def echo_url() -> Any:
    with ServerProcess() as url:
        yield url


def _worker_report(sent: int, received: int, latency_us: int) -> Report:
    report = Report(meta={"url": "ws://x/dev", "scenario": "echo", "connections": 2, "rate": 10.0})
    report.duration_s = 2.0
    for _ in range(sent):
        report.record_sent(0.5)
    for _ in range(received):
        report.record_latency(0.5, latency_us, latency_us / 2)
    report.totals.update(connectionsOpened=2, expected=sent, received=received, lost=sent - received)
    report.connections = [{"id": 0, "sent": sent}]
    return report


def test_no_locust_or_gevent_in_the_rest_of_the_package() -> None:
    code = ("import sys, loadtest, loadtest.__main__, loadtest.distributed, loadtest.report, "
            "loadtest.runner, loadtest.bench; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')); "
            "print(bad); sys.exit(1 if bad else 0)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_master_merges_worker_reports_exactly_with_a_row_per_worker() -> None:
    a, b = _worker_report(100, 100, 1_000), _worker_report(50, 48, 9_000)
    merged = merge_workers([worker_payload("w-a", a, 0.01), worker_payload("w-b", b, 0.02)])
    reread = Report.from_json(json.loads(json.dumps(merged.to_json())))
    meta = reread.meta
    assert meta["engine"] == "locust" and meta["workerCount"] == 2
    assert [row["worker"] for row in meta["workers"]] == ["w-a", "w-b"]
    for key in ROW_KEYS:
        assert reread.totals[key] == sum(row[key] for row in meta["workers"]), key
    assert reread.totals["lost"] == 2
    latency = reread.histograms["latency"]
    assert latency.get_total_count() == 148
    assert latency.get_count_at_value(1_000) == 100 and latency.get_count_at_value(9_000) == 48
    assert histo.percentiles_ms(latency)["max"] == pytest.approx(9.0, rel=1e-3)
    assert meta["workers"][0]["generatorCpuPerFrameUs"] == pytest.approx(100.0)  # 10 ms / 100 frames
    assert meta["workers"][1]["generatorCpuPerFrameUs"] == pytest.approx(400.0)  # 20 ms / 50
    assert meta["generatorCpuPerFrameUs"] == pytest.approx(200.0)  # 30 ms / 150
    assert meta["rate"] == 20.0 and meta["connections"] == 4
    assert "2 workers" in format_summary(reread)


def _members(report: Report, rows: list[tuple[int, int]], due_us: list[float], late_ms: int) -> dict[str, Any]:
    """A broadcast worker's payload: ``rows`` of (received, lost) of 3 expected per member, the
    member ``i`` ``late_ms`` x (i + 1) ms after each message's intended publish."""
    report.meta.update(url="ws://x/dev", scenario="broadcast", connections=len(rows))
    report.totals.update(connectionsOpened=len(rows))
    deliveries: dict[int, list[float]] = {}
    for i, (received, lost) in enumerate(rows):
        counts = {"expected": 3, "received": received, "lost": lost, "duplicated": 0,
                  "outOfOrder": 0, "unexpected": 0}  # fmt: skip
        report.totals.update(counts)
        report.connections.append({"id": i, "sent": 0, **counts})
        for seq in range(received):
            at = due_us[seq] + late_ms * 1000 * (i + 1)
            d = deliveries.setdefault(seq, [0, at, at])
            d[0], d[1], d[2] = d[0] + 1, min(d[1], at), max(d[2], at)
    return worker_payload("w", report, 0.01, {"deliveries": [[k, *v] for k, v in sorted(deliveries.items())]})


def test_broadcast_merge_has_the_publisher_row_and_checks_every_member_against_its_count() -> None:
    bodies: list[dict[str, Any]] = []
    cfg = RunConfig(scenario="broadcast", rate=3.0, duration=1.0, payload=0)
    publisher = Publisher(cfg, "ws://x/dev", run_id="r1", put=bodies.append, sleep=lambda s: None)
    publisher.ready = {"w-a": {"joined": 2}, "w-b": {"joined": 1}}
    publisher.run()
    told = publisher.told()
    assert (told["published"], told["failed"]) == (3, []) and [b["s"] for b in bodies] == [0, 1, 2]
    assert {b["r"] for b in bodies} == {"r1"} and {b["o"] for b in bodies} == {int(publisher.origin_us)}
    a = {**_members(Report(), [(3, 0), (3, 0)], publisher.due_us, 5), "worker": "w-a"}
    b = {**_members(Report(), [(2, 1)], publisher.due_us, 30), "worker": "w-b"}  # missed message 2
    merged = merge_workers([a, b, publisher.payload()])
    meta, totals = merged.meta, merged.totals
    assert meta["workerCount"] == 2 and [r["worker"] for r in meta["workers"]] == ["w-a", "w-b", "publisher"]
    for key in ROW_KEYS:
        assert totals[key] == sum(row[key] for row in meta["workers"]), key
    assert (totals["sent"], totals["expected"], totals["received"], totals["lost"]) == (3, 9, 8, 1)
    facts = meta["broadcast"]
    assert (facts["members"], facts["joined"], facts["published"], facts["exactlyOnce"]) == (3, 3, 3, 2)
    # message 2 never reached every member: publish -> last member is over messages 0 and 1
    assert facts["completeMessages"] == 2 and facts["toLastMemberMs"]["count"] == 2
    to_last = merged.histograms["toLastMember"]  # worker b's member, 30 ms late, is the last
    assert [to_last.get_min_value(), to_last.get_max_value()] == pytest.approx([30_000] * 2, rel=1e-3)
    assert "2 members got every one exactly once, 1 lost" in format_summary(merged)


def test_locust_engine_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="--master"):
        parse_run_args(["--master"])
    with pytest.raises(ConfigError, match="--scenario"):
        parse_run_args(["--workers", "2", "--scenario", "join-storm", "--room-size", "10"])
    room = parse_run_args(["--workers", "2", "--scenario", "broadcast", "--room-size", "40"])
    assert (room.connections, room.room_size) == (40, 40)  # one room of every connection
    assert parse_run_args(["--workers", "2", "--scenario", "broadcast", "-c", "8"]).room_size == 8
    chat = parse_run_args(["--workers", "2", "--scenario", "chat", "--room-size", "2"])
    assert (chat.scenario, chat.workers) == ("chat", 2)
    with pytest.raises(ConfigError, match="--workers"):
        parse_run_args(["--workers", "3", "-c", "2"])
    cfg = parse_run_args(["--worker", "--master-host", "10.0.0.5", "--master-port", "6000"])
    assert (cfg.role, cfg.master_host, cfg.master_port) == ("worker", "10.0.0.5", 6000)


def test_a_master_and_two_workers_account_every_frame(echo_url: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", "--workers", "2", "--url", echo_url, "-c", "10",
         "--ramp", "100", "-r", "200", "-d", "3", "--drain", "5", "--json", str(out),
         "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    totals, meta = data["totals"], data["meta"]
    assert meta["engine"] == "locust" and meta["workerCount"] == 2
    rows = meta["workers"]
    assert len(rows) == 2 and all(row["sent"] > 0 for row in rows)  # both workers carried load
    for key in ROW_KEYS:
        assert totals[key] == sum(row[key] for row in rows), key
    assert totals["lost"] == 0 and totals["duplicated"] == 0 and totals["errorFrames"] == 0
    assert totals["connectionsOpened"] == 10
    assert totals["sent"] == totals["expected"] == totals["received"] == 600  # 200/s for 3 s
    assert data["latencyMs"]["latency"]["count"] == 600
    assert all(row["generatorCpuPerFrameUs"] > 0 for row in rows)
    assert "generator" in done.stdout and "us CPU per frame (locust, 2 workers)" in done.stdout


def test_plain_locust_runs_the_echo_users_and_writes_csv_and_report(
    echo_url: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "4", "-r", "20",
         "-t", "60s", "--host", echo_url, "--csv", str(tmp_path / "run"), "--only-summary",
         "--lt-user-rate", "25", "--lt-duration", "2", "--lt-drain", "5",
         "--lt-json", str(tmp_path / "r.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = Report.read(tmp_path / "r.json")
    assert report.totals["sent"] == report.totals["received"] == 200  # 4 users x 25/s x 2 s
    assert report.totals["lost"] == 0
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["echo"]["Failure Count"]) == 0
    assert int(rows["echo"]["Request Count"]) == 200  # every reply is a Locust request
    assert int(rows["connect"]["Request Count"]) == 4


def test_chat_on_a_master_and_two_workers_delivers_every_message_once(
    echo_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "chat.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", "--workers", "2", "--scenario", "chat", "--room-size", "5",
         "--url", echo_url, "-c", "20", "--ramp", "100", "-r", "100", "-d", "2", "--drain", "5",
         "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    totals, rows = data["totals"], data["meta"]["workers"]
    assert data["meta"]["scenario"] == "chat" and [row["connectionsOpened"] for row in rows] == [10, 10]
    for key in ROW_KEYS:
        assert totals[key] == sum(row[key] for row in rows), key
    # rooms of 5 within each worker: every send reaches the 4 other members, once, in order
    assert totals["sent"] == totals["acks"] == 200  # 100/s for 2 s
    assert totals["expected"] == totals["received"] == 4 * 200
    assert totals["lost"] == totals["duplicated"] == totals["outOfOrder"] == totals["errorFrames"] == 0
    assert data["latencyMs"]["latency"]["count"] == 800 and data["latencyMs"]["ingest"]["count"] == 200
    assert "(locust, 2 workers)" in done.stdout


def test_plain_locust_stopped_by_its_run_time_reports_what_it_sent(echo_url: str, tmp_path: Path) -> None:
    # the Done-when command's shape: -t ends a run planned for much longer (--lt-duration 600)
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "5", "-r", "50",
         "-t", "4s", "--host", echo_url, "--csv", str(tmp_path / "run"), "--only-summary",
         "--lt-user-rate", "20", "--lt-duration", "600", "--lt-json", str(tmp_path / "r.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = Report.read(tmp_path / "r.json")
    totals = report.totals
    assert report.meta["stoppedEarly"] is True and report.duration_s < 600
    assert totals["sent"] > 0 and totals["received"] + totals["lost"] == totals["sent"]
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["echo"]["Request Count"]) == totals["received"]  # the CSV's last round too


@pytest.mark.twin
def test_broadcast_on_a_master_and_two_workers_reaches_every_member_once(twin: Any, tmp_path: Path) -> None:
    out = tmp_path / "broadcast.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", "--workers", "2", "--scenario", "broadcast", "--room-size", "6",
         "--url", twin.ws, "--aws-endpoint", twin.aws, "--ramp", "100", "-r", "10", "-d", "2",
         "--drain", "20", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    totals, meta = data["totals"], data["meta"]
    rows = {row["worker"]: row for row in meta["workers"]}
    assert meta["scenario"] == "broadcast" and meta["workerCount"] == 2
    # the master is the one publisher: 10/s for 2 s; the six members are on the two workers
    assert rows.pop("publisher")["sent"] == totals["sent"] == 20
    assert sorted(row["connectionsOpened"] for row in rows.values()) == [3, 3]
    for key in ROW_KEYS:
        assert totals[key] == sum(row[key] for row in meta["workers"]), key
    # every member got each of the 20 messages exactly once, checked by its own worker
    members = data["connections"]
    assert len(members) == 6
    assert all((m["expected"], m["received"], m["lost"], m["duplicated"], m["unexpected"])
               == (20, 20, 0, 0, 0) for m in members)  # fmt: skip
    assert totals["expected"] == totals["received"] == 6 * 20
    broadcast = meta["broadcast"]
    assert (broadcast["members"], broadcast["joined"], broadcast["published"]) == (6, 6, 20)
    assert (broadcast["exactlyOnce"], broadcast["completeMessages"]) == (6, 20)
    assert broadcast["toLastMemberMs"]["count"] == 20 and broadcast["lastDeliveryS"] > 0
    assert data["latencyMs"]["latency"]["count"] == 120
    assert "last member" in done.stdout


@pytest.mark.twin
def test_plain_locust_publishes_from_its_one_process_to_its_members(twin: Any, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "3", "-r", "30",
         "-t", "120s", "--host", twin.ws, "--only-summary", "--lt-scenario", "broadcast",
         "--lt-rate", "5", "--lt-duration", "2", "--lt-drain", "20", "--lt-aws-endpoint", twin.aws,
         "--lt-json", str(tmp_path / "r.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = Report.read(tmp_path / "r.json")
    totals, facts = report.totals, report.meta["broadcast"]
    rows = report.meta["workers"]  # the process's members, and the same process's publisher
    assert len(rows) == 2 and rows[-1]["worker"] == "publisher" and rows[0]["connectionsOpened"] == 3
    assert (totals["sent"], totals["expected"], totals["received"], totals["lost"]) == (10, 30, 30, 0)
    assert (facts["members"], facts["exactlyOnce"], facts["completeMessages"]) == (3, 3, 10)
