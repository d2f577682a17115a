from __future__ import annotations

import importlib.util

import pytest

from loadtest.bench import Row, decode_rows, fanout, format_table, machine, sequential_rtt
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
    assert text.splitlines()[0].startswith(f"machine: {info['cores']} cores")
    assert "n/a (missing)" in text and "0.5x" in text


@pytest.mark.skipif(
    importlib.util.find_spec("loadtest.bench_fanout") is not None, reason="bench_fanout exists"
)
def test_missing_fanout_part_is_reported_not_raised() -> None:
    assert fanout(None).value == "n/a (missing)"


def test_decode_figures_are_records_per_second() -> None:
    rows = decode_rows(300)
    assert rows[0].name.startswith("record decode")
    if importlib.util.find_spec("pipeline.runtime.records") is not None:
        assert rows[0].value.endswith("rec/s") and rows[0].ratio.endswith("x")
