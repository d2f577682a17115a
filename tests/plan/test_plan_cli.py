"""``python -m pipeline plan``: the table, the JSON document and ``--from-loadtest``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from loadtest.report import Report
from pipeline.__main__ import main


def test_plan_prints_the_table_and_writes_the_json(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"
    assert main(["plan", "--connections", "10000", "--frames-per-minute", "6",
                 "--frame-bytes", "1000", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "npx cdk deploy -c shards=2" in text and "apiGatewayMessages" in text
    doc = json.loads(out.read_text())
    assert doc["shards"] == 2 and doc["connectionsRps"] == 1000
    assert doc["monthlyUsd"] == pytest.approx(sum(c["monthlyUsd"] for c in
                                                  doc["components"].values()), abs=0.05)
    for name in ("apiGatewayMessages", "apiGatewayConnectionMinutes", "kinesis",
                 "enhancedFanOut", "lambda", "dynamodb", "sqs", "cloudwatchLogs"):
        c = doc["components"][name]
        assert set(c) >= {"monthlyUsd", "quantity", "unit", "unitPriceUsd"}
        assert c["quantity"] * c["unitPriceUsd"] <= c["monthlyUsd"] + 0.01
    assert doc["components"]["apiGatewayMessages"]["monthlyUsd"] == pytest.approx(4404.80)
    assert [w["level"] for w in doc["warnings"]] == ["near"]
    # the registry's consumers and their ParallelizationFactor are the defaults
    assert doc["consumers"] == 6 and doc["concurrencyPerFunction"] == 2


def test_the_table_shows_whole_units_and_where_the_factor_comes_from(
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--connections", "1000", "--frames-per-minute", "6", "--frame-bytes", "200"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "consumer-shard-hours (provisioned, enhanced fan-out) " in text
    assert "messages (32 KB increments), first 1 billion a month " in text
    rows = [line for line in text.splitlines() if line.startswith(("component", "total"))]
    assert len({len(row) for row in rows}) == 1  # the USD column lines up with the header
    # the default is the largest factor outside the fan-out tier (consumers/*/settings.json)
    assert ("ParallelizationFactor 1: the registry's largest, the fan-out tier's 5 (fanout) "
            "aside)") in text
    assert main([*argv, "--parallelization", "3"]) == 0
    assert "(shards x ParallelizationFactor 3)" in capsys.readouterr().out


def test_plan_from_a_loadtest_report(tmp_path: Path) -> None:
    report = Report(meta={"scenario": "echo", "connections": 200, "rate": 100,
                          "payloadBytes": 936},
                    duration_s=60.0, totals=Counter({"sent": 6000, "connectionsOpened": 200}))
    path = tmp_path / "r.json"
    report.write(path)
    out = tmp_path / "p.json"
    assert main(["plan", "--from-loadtest", str(path), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    # 6,000 frames in 60 s = 100 frames/s from 200 connections = 30 frames/min each
    assert doc["rates"]["framesPerS"] == 100
    assert doc["assumptions"]["frame_bytes"] == 1000  # 936 B payload + 64 B of frame JSON


def test_plan_explains_missing_and_bad_input(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--connections", "10"]) == 2
    assert "--frames-per-minute is required" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"tool": "other"}')
    assert main(["plan", "--from-loadtest", str(bad)]) == 2
    assert "not a loadtest report" in capsys.readouterr().err


def test_a_bare_report_name_is_found_where_the_load_test_wrote_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loadtest-results").mkdir()
    Report(meta={"scenario": "echo", "connections": 10, "rate": 10, "payloadBytes": 100},
           duration_s=10.0, totals=Counter({"sent": 100, "connectionsOpened": 10})
           ).write(tmp_path / "loadtest-results" / "run.json")
    assert main(["plan", "--from-loadtest", "run.json", "--json", "p.json"]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["rates"]["framesPerS"] == 10


def test_a_mistyped_flag_shows_the_commands_own_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "--conections", "10"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m pipeline plan ")
    assert "error: unrecognized arguments: --conections 10" in err


def test_plan_prices_lambda_with_the_measured_cost_and_names_its_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cost = tmp_path / "cost.json"
    cost.write_text(json.dumps({
        "batchSize": 100, "source": {"command": "python -m loadtest.bench",
                                     "date": "2026-12-07 10:00 UTC", "machine": "2 cores"},
        "consumers": {"echo": {"billedMsPer1000": 120.0}, "fallback": {"billedMsPer1000": 90.0}},
    }))
    out = tmp_path / "plan.json"
    assert main(["plan", "--connections", "1000", "--frames-per-minute", "6",
                 "--frame-bytes", "200", "--lambda-cost", str(cost), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "measured 120 billed ms per 1,000 records (echo, the dearest measured consumer, " \
        "batch 100; run `python -m loadtest.bench`, 2026-12-07 10:00 UTC, 2 cores)" in text
    assert json.loads(out.read_text())["assumptions"]["billed_ms_per_1000"] == 120.0
    assert main(["plan", "--connections", "1000", "--frames-per-minute", "6",
                 "--frame-bytes", "200", "--assumed-lambda-cost"]) == 0
    assert "assumed 20 ms per invocation" in capsys.readouterr().out


def test_a_measured_cost_without_its_run_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cost = tmp_path / "cost.json"
    cost.write_text(json.dumps({"batchSize": 100, "consumers": {"echo": {"billedMsPer1000": 1}}}))
    assert main(["plan", "--connections", "10", "--frames-per-minute", "6", "--frame-bytes",
                 "200", "--lambda-cost", str(cost)]) == 2
    assert "'source' must name the run" in capsys.readouterr().err
