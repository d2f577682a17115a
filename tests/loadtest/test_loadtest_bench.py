from __future__ import annotations

import importlib.util

from loadtest.bench import (
    Row,
    decode_rows,
    fanout,
    format_table,
    machine,
    sequential_rtt,
    throughput_search,
)  # fmt: skip
from loadtest.echo_server import EchoServer


async def test_sequential_round_trip_counts_every_frame() -> None:
    server = EchoServer()
    url = await server.start()
    try:
        result = await sequential_rtt(url, frames=50)
    finally:
        await server.stop()
    assert result["count"] == 50 and result["lost"] == 0
    assert 0 < result["p50"] <= result["p99"]


def test_table_has_the_machine_header_and_every_row() -> None:
    info = machine()
    text = format_table(info, [Row("a", "1 ms", "2 ms", "0.5x"), Row("b", "n/a (missing)")], ["n"])
    assert text.splitlines()[0].startswith(f"machine: {info['cores']} cores, {info['cpu']}")
    assert "load " in text.splitlines()[0] and "measured in this run" in text.splitlines()[1]
    assert "n/a (missing)" in text and "0.5x" in text


def test_a_failing_fanout_part_is_reported_not_raised() -> None:
    row = fanout(None, connections=0)  # refused by bench_fanout (or it is missing)
    assert row.value.startswith("n/a (")
    assert row.name == "broadcast to 0 connections"


def test_decode_figures_are_records_per_second() -> None:
    rows = decode_rows(300)
    assert rows[0].name.startswith("Kinesis data decode")
    if importlib.util.find_spec("pipeline.runtime.records") is not None:
        assert rows[0].value.endswith("rec/s") and rows[0].ratio.endswith("x")


async def test_throughput_search_is_bounded_and_reports_each_step() -> None:
    server = EchoServer()
    url = await server.start()
    try:
        best, notes = await throughput_search(url, budget_s=30, rates=(20, 40), step_s=0.3)
    finally:
        await server.stop()
    assert notes == [n for n in notes if n.endswith("-> ok")] and len(notes) == 2
    assert 30 <= best <= 60  # 40/s offered, measured over the step
