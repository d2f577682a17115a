"""loadtest/bench_post.py runs and reports its figures (not a timed test: no figure is judged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.bench import post_figures
from loadtest.bench_post import main, measure, rows


def test_it_reports_post_and_record_figures_for_both_clients(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fig = measure(posts=20, batches=1, rounds=1)
    for key in ("runtime_seq", "boto3_seq", "runtime_pool", "boto3_pool", "echo_record"):
        assert fig[f"{key}_cpu_us"] > 0 and fig[f"{key}_per_s"] > 0
    names = [r[0] for r in rows(fig)]
    assert sum("post" in n for n in names) == 2 and sum("record" in n for n in names) == 1
    assert main(["--posts", "20", "--batches", "1", "--rounds", "1",
                 "--json", str(tmp_path / "f.json")]) == 0
    out = capsys.readouterr().out
    assert "(runtime)" in out and "(boto3)" in out and "per record" in out
    assert "CloudWatchMetrics" not in out  # the EMF lines are written, not shown
    assert json.loads((tmp_path / "f.json").read_text())["echo_record_cpu_us"] > 0


def test_bench_rows_name_post_and_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("loadtest.bench_post.measure",
                        lambda **_: measure(posts=20, batches=1, rounds=1))
    found = [r[0] for r in post_figures(quick=True) or []]
    assert any("post" in n for n in found) and any("record" in n for n in found)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="posts"):
        measure(posts=0)


def test_import_rows_name_every_consumer_next_to_boto3() -> None:
    from loadtest import bench_import

    result = bench_import.measure(rounds=1)
    assert set(result) == {"boto3", *bench_import.consumers()} and all(
        v > 0 for v in result.values())
    table = bench_import.rows(result)
    assert len(table) == len(bench_import.consumers())
    assert all("import" in name and "(import boto3)" in base for name, _, base, _ in table)


def test_the_echo_first_batch_loads_no_boto3_and_costs_less_cpu_than_importing_it() -> None:
    from loadtest import bench_import

    result = bench_import.measure_first_batch(rounds=1)
    assert result["boto3_loaded"] == 0.0
    assert result["cpu_ms"] > 0 and result["boto3_cpu_ms"] > 0
    (cpu, loads) = bench_import.first_batch_rows(result)
    assert "first batch" in cpu[0] and loads[1] == "no"


def test_cost_figures_are_what_plan_reads(tmp_path: Path) -> None:
    from loadtest import bench_cost
    from pipeline.plan.lambda_cost import load_lambda_cost

    result = bench_cost.measure(batches=1)
    assert set(result) == set(bench_cost.CONSUMERS)
    assert all(f["billedMsPer1000"] >= f["durationMsPer1000"] > 0 for f in result.values())
    path = tmp_path / "cost.json"
    path.write_text(json.dumps(bench_cost.document(result, "python -m loadtest.bench_cost")))
    cost = load_lambda_cost(path)
    assert cost.batch_size == 100 and set(cost.billed_ms_per_1000) == set(result)
    assert "`python -m loadtest.bench_cost`" in cost.source
    assert all("record" not in name and "post" not in name for name, *_ in bench_cost.rows(result))
