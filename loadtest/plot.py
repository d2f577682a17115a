"""The PNG: latency over time (per second) above the latency distribution (percentile spectrum)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from loadtest import histo
from loadtest.report import Report
from loadtest.stages import CROSS_CLOCK_STAGES, STAGES

COLORS = {"p50": "#1f77b4", "p99": "#d62728", "max": "#7f7f7f", "service": "#2ca02c",
          "ingest": "#000000"}
STAGE_COLORS = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def spectrum(report: Report, name: str) -> tuple[list[float], list[float]]:
    """(x = 1 / (1 - percentile), latency ms) points up to the resolution the count allows."""
    hist = report.histograms.get(name)
    if hist is None or not hist.get_total_count():
        return [], []
    top = max(1.0, math.log10(hist.get_total_count()))
    xs, ys = [], []
    steps = 200
    for k in range(steps + 1):
        nines = top * k / steps
        pct = 100.0 * (1.0 - 10.0**-nines)
        xs.append(10.0**nines)
        ys.append(max(hist.get_value_at_percentile(pct), 1) / 1000.0)
    xs.append(10.0 ** (top + 0.15))
    ys.append(max(hist.get_max_value(), 1) / 1000.0)
    return xs, ys


def _title(report: Report) -> str:
    m, t = report.meta, report.totals
    lat = histo.percentiles_ms(report.hist("latency"))
    return (
        f"{m.get('scenario', '?')} via {m.get('url', '?')}: {t['connectionsOpened']} connections, "
        f"{m.get('rate', '?')}/s offered for {report.duration_s:.0f} s, {m.get('payloadBytes', '?')} B frames\n"
        f"p50 {_ms(lat['p50'])}   p99 {_ms(lat['p99'])}   p99.9 {_ms(lat['p99.9'])}   "
        f"max {_ms(lat['max'])}   |   received {t['received']:,} of {t['expected']:,}, "
        f"lost {t['lost']}, dup {t['duplicated']}, out-of-order {t['outOfOrder']}, "
        f"errors {sum(report.errors.values())}"
        + (f"\nacked frames: {t['acks']:,} acks, {t['nacks']:,} nacks, {t['retries']:,} retries, "
           f"{t['ackGaveUp']:,} given up"
           if t["acks"] or t["nacks"] else "")
    )


def write_plot(report: Report, path: Path) -> None:
    """Render ``report`` to a PNG at ``path``."""
    fig, (ax_t, ax_d) = plt.subplots(
        2, 1, figsize=(11, 8.5), gridspec_kw={"height_ratios": [1, 1.1]}, constrained_layout=True
    )
    fig.suptitle(_title(report), fontsize=10.5)

    # latency over time, by intended send second
    secs = sorted(report.windows)
    rate_ax = ax_t.twinx()
    rate_ax.bar(secs, [report.windows[s].received for s in secs], width=0.9, color="#e4e4e4",
                zorder=0)  # fmt: skip
    rate_ax.step(secs, [report.windows[s].sent for s in secs], where="mid", color="#b0b0b0",
                 lw=1, zorder=0)  # fmt: skip
    rate_ax.set_ylim(bottom=0, top=max([w.sent for w in report.windows.values()] + [1]) * 1.25)
    rate_ax.set_ylabel("frames/s: sent (line), answered (bars)", color="#909090")
    rate_ax.tick_params(axis="y", colors="#909090")
    ax_t.set_zorder(rate_ax.get_zorder() + 1)
    ax_t.patch.set_visible(False)
    for key, pct in (("max", 100.0), ("p99", 99.0), ("p50", 50.0)):
        ys = []
        for s in secs:
            h = report.windows[s].hist
            if not h.get_total_count():
                ys.append(float("nan"))
            else:
                value = h.get_max_value() if pct == 100.0 else h.get_value_at_percentile(pct)
                ys.append(max(value, 1) / 1000.0)
        style = "--" if key == "max" else "-"
        ax_t.plot(secs, ys, style, marker="o", ms=3, lw=1.6, color=COLORS[key], label=key)
    ax_t.set_yscale("log")
    ax_t.set_xlabel("seconds since start (by intended send time)")
    ax_t.set_ylabel("latency (ms, log)")
    ax_t.set_title("Latency over time, per second", fontsize=10, loc="left")
    ax_t.grid(True, which="both", axis="y", alpha=0.3)
    unanswered = report.totals["lost"]
    if unanswered:
        ax_t.text(0.99, 0.04, f"{unanswered:,} frames unanswered by the end of the drain",
                  transform=ax_t.transAxes, ha="right", fontsize=9, color=COLORS["p99"])  # fmt: skip
    lo, hi = ax_t.get_ylim()
    ax_t.set_ylim(lo, hi * 3)  # headroom for the legend
    ax_t.legend(loc="upper left", fontsize=9, framealpha=0.9, ncol=3)

    # distribution: percentile spectrum
    labels = {"latency": "from intended send (open loop)", "service": "from actual send",
              "ingest": "ingest: first send -> ack (acked routes)"}
    for name, color, width, style in (("latency", COLORS["p99"], 2.4, "-"),
                                      ("service", COLORS["service"], 1.6, "--"),
                                      ("ingest", COLORS["ingest"], 1.4, "-.")):
        xs, ys = spectrum(report, name)
        if xs:
            ax_d.plot(xs, ys, lw=width, ls=style, color=color, label=labels[name], zorder=4)
    floor = min((min(ax_d.get_lines()[0].get_ydata()) if ax_d.get_lines() else 1.0), 1.0)
    for (stage, _, _), color in zip(STAGES, STAGE_COLORS, strict=True):
        name = "stage:" + stage
        hist = report.histograms.get(name)
        if hist is None or hist.get_max_value() < 1:
            continue  # a stage the clocks cannot resolve (same millisecond) says nothing
        xs, ys = spectrum(report, name)
        ax_d.plot(xs, ys, lw=1.1, alpha=0.85, ls=":" if stage in CROSS_CLOCK_STAGES else "-",
                  color=color, label=f"stage {stage}")  # fmt: skip
    top = max((max(line.get_ydata()) for line in ax_d.get_lines()), default=1.0)
    ax_d.set_ylim(bottom=max(floor / 2, 0.01), top=top * 2)
    ax_d.set_xscale("log")
    ax_d.set_yscale("log")
    ax_d.xaxis.set_major_formatter(FuncFormatter(_percentile_label))
    ax_d.set_xlabel("percentile")
    ax_d.set_ylabel("latency (ms, log)")
    ax_d.set_title("Latency distribution (percentile spectrum)", fontsize=10, loc="left")
    ax_d.grid(True, which="both", alpha=0.3)
    ax_d.legend(loc="best", fontsize=8.5, framealpha=0.9, ncol=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _percentile_label(x: float, _pos: int) -> str:
    if x <= 1:
        return "0%"
    pct = 100.0 * (1.0 - 1.0 / x)
    return f"{pct:.{max(0, round(math.log10(x)) - 2)}f}%"


def _ms(value: float | int) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"
