"""The bench's rows keep the shape a script searches for (docs: loadtest/bench_rows.py).

No figure here is measured: the rows are built from made-up numbers, written as ``--json`` and
searched the way a script would, by the rules the module docstring states.
"""

from __future__ import annotations

import re

import orjson
import pytest

from loadtest.bench import json_dump
from loadtest.bench_import import consumers, first_batch_rows
from loadtest.bench_import import rows as import_rows
from loadtest.bench_post import rows as post_rows
from loadtest.bench_rows import EchoServerFigures, Measured, Row, build, markdown, notes
from loadtest.machine import machine

POST = {"workers": 12.0, "runtime_seq_cpu_us": 24.0, "boto3_seq_cpu_us": 720.0,
        "runtime_seq_per_s": 19000.0, "boto3_seq_per_s": 1000.0, "runtime_pool_cpu_us": 25.0,
        "boto3_pool_cpu_us": 690.0, "runtime_pool_per_s": 21000.0, "boto3_pool_per_s": 1200.0,
        "echo_record_cpu_us": 87.0, "echo_record_per_s": 9000.0}


def measured() -> Measured:
    imports = {"boto3": 640.0, **{m: 300.0 + i for i, m in enumerate(consumers())}}
    return Measured(
        frames=1000,
        bare=EchoServerFigures("bare ws", {"p50": 0.4, "p99": 1.9, "lost": 0}, 15995.0),
        floor=EchoServerFigures("floor", {"p50": 0.9, "p99": 3.1, "lost": 0}, 4125.0,
                                (120.0, 140.0), ["1000/s: lost 0, p99 2.0 ms -> ok"]),
        twin=EchoServerFigures("twin", {"p50": 1.2, "p99": 6.0, "lost": 2}, 2250.0,
                               (380.0, 160.0)),
        post=post_rows(POST), imports=import_rows(imports),
        first_batch=first_batch_rows({"cpu_ms": 212.4, "boto3_cpu_ms": 379.0,
                                      "boto3_loaded": 0.0}),
    )


def rows_as_a_script_reads_them() -> list[dict[str, str]]:
    doc = orjson.loads(json_dump(machine(), build(measured()), notes(measured())))
    assert set(doc) == {"machine", "rows", "notes"}
    assert all(set(r) == {"name", "value", "baseline", "ratio"} for r in doc["rows"])
    return list(doc["rows"])


def test_the_floor_rate_reads_n_frames_per_second_floor() -> None:
    found = {int(m.group(1)) for r in rows_as_a_script_reads_them()
             for m in [re.search(r"(\d+) frames/s \(floor\)", r["value"] + " " + r["baseline"])]
             if m}
    assert found == {4125}


@pytest.mark.parametrize(("word", "unit", "count"), [("post", "µs", 2), ("record", "µs", 1)])
def test_post_and_record_rows_carry_microseconds(word: str, unit: str, count: int) -> None:
    named = [r for r in rows_as_a_script_reads_them() if word in r["name"]]
    assert len(named) == count
    assert all(re.match(rf"\d+ {unit} ", r["value"]) for r in named)


def test_the_record_row_is_the_echo_worker_cpu() -> None:
    (row,) = [r for r in rows_as_a_script_reads_them() if "record" in r["name"]]
    assert row["value"].startswith("87 µs")


def test_every_consumer_has_one_import_row_in_ms_next_to_boto3() -> None:
    named = [r for r in rows_as_a_script_reads_them() if "import" in r["name"]]
    assert sorted(r["name"].split()[3] for r in named) == sorted(
        m.split(".")[1] for m in consumers())
    assert all(re.fullmatch(r"\d+ ms", r["value"]) and "(import boto3)" in r["baseline"]
               for r in named)


def test_ratios_are_against_the_same_runs_baselines() -> None:
    by_name = {r["name"]: r for r in rows_as_a_script_reads_them()}
    assert by_name["zero-loss echo rate (p99 < 1 s): twin vs floor"]["ratio"].startswith(
        "55 % of floor")
    assert by_name["zero-loss echo rate (p99 < 1 s): floor vs bare"]["ratio"] == "26 % of bare ws"
    assert by_name["echo round trip p50, 1 client, 1000 sequential: twin vs bare"][
        "ratio"].startswith("3.0x")
    assert by_name["CPU per echo frame at 1000 frames/s, server process: twin vs floor"][
        "ratio"] == "3.2x"


def test_a_missing_part_is_a_row_that_says_so() -> None:
    m = measured()
    m.twin, m.post = EchoServerFigures("twin"), None
    text = " ".join(f"{r.value} {r.ratio}" for r in build(m))
    assert "n/a (twin)" in text and "n/a (bench_post failed)" in text


def test_markdown_states_machine_date_command_and_every_row() -> None:
    rows = build(measured())
    page = markdown(machine(), [*rows, Row("a | b", "1")], ["step"], command="python -m x",
                    date="2026-12-07 10:00 UTC", seconds=12.0, load_end="1.5")
    assert "`python -m x`" in page and "2026-12-07 10:00 UTC" in page and "cores" in page
    assert sum(line.startswith("| ") for line in page.splitlines()) == len(rows) + 2
    assert "a \\| b" in page and "- step" in page


def test_the_first_batch_rows_read_cpu_ms_next_to_import_boto3_and_whether_it_loaded() -> None:
    rows = rows_as_a_script_reads_them()
    (cpu,) = [r for r in rows if "first batch" in r["name"] and "CPU" in r["name"]]
    assert (cpu["value"], cpu["baseline"], cpu["ratio"]) == (
        "212 ms", "379 ms (import boto3, CPU)", "0.56x")
    (loads,) = [r for r in rows if "loads boto3" in r["name"]]
    assert loads["value"] == "no"
