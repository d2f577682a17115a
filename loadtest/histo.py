"""HDR histograms of latencies in microseconds: creation, clamped recording, percentiles, codec."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 120_000_000  # 2 minutes; anything slower is clamped (and counted by the caller)
SIGNIFICANT_FIGURES = 3
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    """An empty histogram with the load test's fixed range and precision (merge-compatible)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def record_us(hist: HdrHistogram, value_us: float) -> bool:
    """Record a latency; values outside the range are clamped. Returns False if clamped."""
    value = round(value_us)
    if value < 0:
        hist.record_value(0)
        return False
    if value > HIGHEST_US:
        hist.record_value(HIGHEST_US)
        return False
    hist.record_value(value)
    return True


def percentiles_ms(hist: HdrHistogram) -> dict[str, float | int]:
    """``count``, ``p50``, ``p90``, ``p99``, ``p99.9``, ``max`` and ``min`` (milliseconds)."""
    count = int(hist.get_total_count())
    out: dict[str, float | int] = {"count": count}
    for p in PERCENTILES:
        key = f"p{p:g}"
        out[key] = hist.get_value_at_percentile(p) / 1000.0 if count else 0.0
    out["max"] = hist.get_max_value() / 1000.0 if count else 0.0
    out["min"] = hist.get_min_value() / 1000.0 if count else 0.0
    out["mean"] = round(hist.get_mean_value() / 1000.0, 3) if count else 0.0
    return out


def encode(hist: HdrHistogram) -> str:
    """Compressed base64 (HdrHistogram V2 format, readable by every HdrHistogram port)."""
    raw: Any = hist.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def decode(blob: str) -> HdrHistogram:
    """Inverse of :func:`encode`; always returns a histogram with the load test's layout."""
    hist = new_histogram()
    if blob:
        hist.decode_and_add(blob)
    return hist


def merged(hists: list[HdrHistogram]) -> HdrHistogram:
    """A new histogram holding every value of ``hists`` (exact: counts are added bucket by bucket)."""
    out = new_histogram()
    for h in hists:
        if h.get_total_count():
            out.add(h)
    return out
