"""The engine's overhead benchmark runs and delivers everything (numbers are in the report)."""

from __future__ import annotations

from loadtest.bench_esm import run


async def test_bench_delivers_every_record_with_low_overhead() -> None:
    result = await run(records=5_000, samples=50)
    assert result["mean_batch"] > 1  # records were batched, not one invocation per record
    assert result["records_per_s"] > 5_000
    assert result["latency_p50_ms"] < 20  # window 0: invoked as soon as the record is there


def test_the_vtl_benchmark_renders_every_case(capsys: object) -> None:
    from loadtest import bench_vtl

    bench_vtl.main(["--number", "1"])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "baseline: echo envelope in plain Python" in out
    assert out.count("x baseline)") == len(bench_vtl.cases())
