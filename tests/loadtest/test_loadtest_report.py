from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from loadtest import histo
from loadtest.__main__ import main
from loadtest.errors import ReportError
from loadtest.report import Report, merge


def _report(seed: int, n: int, meta_rate: float = 100.0) -> tuple[Report, list[float]]:
    rng = random.Random(seed)
    r = Report(meta={"scenario": "echo", "rate": meta_rate, "connections": 2}, duration_s=2.0)
    values = []
    for k in range(n):
        due = k / n * 2
        lat = rng.lognormvariate(7, 1.2)  # µs, a long tail
        values.append(lat)
        r.record_sent(due)
        r.record_latency(due, lat, lat / 2)
        r.record_stages({"gatewayToStream": lat / 4000, "consumer": -0.5})
    r.totals.update({"connectionsOpened": 2, "expected": n, "received": n - 3, "lost": 3})
    r.errors["unknown_action"] += 2
    r.close_codes["1000"] += 2
    r.connections = [{"id": 0, "sent": n}]
    return r, values


def test_merge_is_exact_bucket_by_bucket() -> None:
    a, va = _report(1, 3000)
    b, vb = _report(2, 5000)
    m = merge([a, b], ["a.json", "b.json"])
    direct = histo.new_histogram()
    for v in va + vb:
        histo.record_us(direct, v)
    got = m.histograms["latency"]
    assert got.get_total_count() == 8000
    for p in (1, 50, 90, 99, 99.9, 99.99, 100):
        assert got.get_value_at_percentile(p) == direct.get_value_at_percentile(p)
    assert list(got.counts) == list(direct.counts)
    assert sum(w.hist.get_total_count() for w in m.windows.values()) == 8000
    assert m.totals["lost"] == 6 and m.totals["sent"] == 8000
    assert m.errors["unknown_action"] == 4
    assert m.meta["rate"] == 200.0 and m.meta["connections"] == 4
    assert [c["source"] for c in m.connections] == ["a.json", "b.json"]


def test_negative_stage_durations_are_counted_not_recorded_below_zero() -> None:
    r, _ = _report(3, 10)
    assert r.totals["negativeStages"] == 10
    assert r.histograms["stage:consumer"].get_max_value() == 0


def test_json_round_trip_keeps_histograms_and_counters(tmp_path: Path) -> None:
    r, _ = _report(4, 2000)
    path = tmp_path / "r.json"
    r.write(path)
    back = Report.read(path)
    assert back.to_json() == r.to_json()
    assert list(back.histograms["latency"].counts) == list(r.histograms["latency"].counts)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read JSON"),
        ('{"tool": "other"}', "not a loadtest report"),
        ('{"tool": "loadtest", "version": 99}', "report version 99"),
        ('{"tool": "loadtest", "version": 1, "startedAt": 0}', "malformed report"),
        (
            '{"tool":"loadtest","version":1,"startedAt":0,"durationS":1,"totals":{},'
            '"histograms":{"latency":"!!notbase64"}}',
            "malformed report",
        ),
    ],
)
def test_bad_reports_get_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ReportError, match=message):
        Report.read(path)


def test_merge_command_writes_the_merged_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = _report(5, 100)
    b, _ = _report(6, 300)
    a.write(tmp_path / "a.json")
    b.write(tmp_path / "b.json")
    out = tmp_path / "m.json"
    assert main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert merged["totals"]["sent"] == 400
    assert merged["latencyMs"]["latency"]["count"] == 400
    assert "lost 6" in capsys.readouterr().out


def test_merge_command_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.json").write_text("[]")
    assert main(["merge", str(tmp_path / "x.json")]) == 1
    assert "not a loadtest report" in capsys.readouterr().err


def test_plot_is_a_png(tmp_path: Path) -> None:
    from loadtest.plot import write_plot

    r, _ = _report(7, 500)
    write_plot(r, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
