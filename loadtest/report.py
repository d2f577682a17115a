"""What a run measured: a live recorder, the JSON report, the exact merge and the text summary."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadtest import histo
from loadtest.errors import ReportError
from loadtest.machine import describe
from loadtest.stages import STAGES
from pipeline.loadtest_report import REPORT_TOOL, REPORT_VERSION, ReportFormatError, check_header

TOTAL_KEYS = (
    "connectionsOpened", "connectFailed", "sent", "expected", "received", "lost",
    "duplicated", "outOfOrder", "unexpected", "errorFrames", "clamped", "negativeStages",
    "acks", "nacks", "retries", "ackGaveUp", "ackMissing", "presenceFrames",
)  # fmt: skip


@dataclass
class Window:
    """One second of the run (by intended send time): counts and its latency histogram."""

    sent: int = 0
    received: int = 0
    hist: HdrHistogram = field(default_factory=histo.new_histogram)


@dataclass
class Report:
    """A run's results. Histograms are kept exact so reports from many processes merge exactly."""

    meta: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    duration_s: float = 0.0
    totals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[str] = field(default_factory=Counter)
    histograms: dict[str, HdrHistogram] = field(default_factory=dict)
    windows: dict[int, Window] = field(default_factory=dict)
    connections: list[dict[str, Any]] = field(default_factory=list)

    # --- recording (called by the runner) -------------------------------------------------
    def hist(self, name: str) -> HdrHistogram:
        h = self.histograms.get(name)
        if h is None:
            h = self.histograms[name] = histo.new_histogram()
        return h

    def window(self, second: int) -> Window:
        w = self.windows.get(second)
        if w is None:
            w = self.windows[second] = Window()
        return w

    def record_sent(self, due_s: float) -> None:
        self.totals["sent"] += 1
        self.window(max(0, int(due_s))).sent += 1

    def record_latency(self, due_s: float, latency_us: float, service_us: float | None) -> None:
        """One receipt: latency from the intended send time, and from the actual one if known."""
        if not histo.record_us(self.hist("latency"), latency_us):
            self.totals["clamped"] += 1
        if service_us is not None:
            histo.record_us(self.hist("service"), service_us)
        w = self.window(max(0, int(due_s)))
        w.received += 1
        histo.record_us(w.hist, latency_us)

    def record_ingest(self, latency_us: float) -> None:
        """Ingest latency of an acked frame: its send to its ack (the frame is in the stream)."""
        histo.record_us(self.hist("ingest"), latency_us)

    def record_stages(self, stages_ms: dict[str, float]) -> None:
        for name, ms in stages_ms.items():
            if ms < 0:
                self.totals["negativeStages"] += 1
            histo.record_us(self.hist(f"stage:{name}"), max(0.0, ms) * 1000.0)

    # --- derived figures ------------------------------------------------------------------
    def achieved(self) -> dict[str, float]:
        d = self.duration_s or 1.0
        return {
            "sentPerS": round(self.totals["sent"] / d, 1),
            "receivedPerS": round(self.totals["received"] / d, 1),
        }

    def summary(self) -> dict[str, Any]:
        return {name: histo.percentiles_ms(h) for name, h in sorted(self.histograms.items())}

    # --- JSON -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "tool": REPORT_TOOL,
            "meta": self.meta,
            "startedAt": self.started_at,
            "durationS": self.duration_s,
            "totals": {k: int(self.totals[k]) for k in TOTAL_KEYS},
            "achieved": self.achieved(),
            "errors": dict(self.errors),
            "closeCodes": dict(self.close_codes),
            "latencyMs": self.summary(),  # derived, for people; ignored when read back
            "histograms": {k: histo.encode(h) for k, h in sorted(self.histograms.items())},
            "perSecond": [
                {"t": t, "sent": w.sent, "received": w.received, "hist": histo.encode(w.hist)}
                for t, w in sorted(self.windows.items())
            ],
            "connections": self.connections,
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_json(cls, data: Any, source: str = "<report>") -> Report:
        """Read a report back; raises :class:`ReportError` on anything malformed."""
        try:
            check_header(data, source)
        except ReportFormatError as exc:
            raise ReportError(source, str(exc).removeprefix(f"{source}: ")) from exc
        try:
            report = cls(
                meta=dict(data.get("meta", {})),
                started_at=float(data["startedAt"]),
                duration_s=float(data["durationS"]),
                totals=Counter({k: int(v) for k, v in data["totals"].items()}),
                errors=Counter({str(k): int(v) for k, v in data.get("errors", {}).items()}),
                close_codes=Counter(
                    {str(k): int(v) for k, v in data.get("closeCodes", {}).items()}
                ),
                histograms={k: histo.decode(v) for k, v in data["histograms"].items()},
                connections=list(data.get("connections", [])),
            )
            for row in data.get("perSecond", []):
                report.windows[int(row["t"])] = Window(
                    int(row["sent"]), int(row["received"]), histo.decode(row["hist"])
                )
        except ReportError:
            raise
        except Exception as exc:  # malformed input of any shape gets one clear error
            raise ReportError(source, f"malformed report ({type(exc).__name__}: {exc})") from exc
        return report

    @classmethod
    def read(cls, path: Path) -> Report:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ReportError(str(path), f"cannot read JSON ({exc})") from exc
        return cls.from_json(data, str(path))


def merge(reports: list[Report], sources: list[str] | None = None) -> Report:
    """One report holding all of ``reports``: counters summed, histograms added bucket by bucket.

    Reports of different scenarios or targets (``meta`` ``scenario``/``url``) are refused with
    :class:`ReportError`: their latencies measure different things.

    Per-second windows are aligned on each run's own start; the duration is the longest run's,
    so the achieved rate is the combined rate of runs that ran at the same time.
    """
    if not reports:
        raise ReportError("merge", "nothing to merge")
    names = sources or [f"#{i}" for i in range(len(reports))]
    for key, what in (("scenario", "scenario"), ("url", "target")):
        values = [r.meta.get(key) for r in reports]
        if len(set(values)) > 1:
            first = values[0]
            other = next(i for i, v in enumerate(values) if v != first)
            raise ReportError("merge", f"{names[0]} and {names[other]} have different {what}s "
                              f"({first} vs {values[other]}): only runs of one scenario against "
                              "one target merge; merge them separately")
    out = Report()
    out.meta = dict(reports[0].meta)
    out.meta["mergedFrom"] = names
    for key in ("rate", "connections"):  # the merged load is the sum of the parts' loads
        values = [r.meta.get(key) for r in reports]
        if all(isinstance(v, int | float) for v in values):
            out.meta[key] = sum(values)
    out.started_at = min(r.started_at for r in reports)
    out.duration_s = max(r.duration_s for r in reports)
    for i, r in enumerate(reports):
        out.totals.update(r.totals)
        out.errors.update(r.errors)
        out.close_codes.update(r.close_codes)
        for name, h in r.histograms.items():
            out.hist(name).add(h)
        for t, w in r.windows.items():
            ow = out.window(t)
            ow.sent += w.sent
            ow.received += w.received
            ow.hist.add(w.hist)
        tag = out.meta["mergedFrom"][i]
        out.connections.extend({**c, "source": c.get("source", tag)} for c in r.connections)
    return out


def format_summary(report: Report) -> str:
    """The human summary printed at the end of a run (and by ``merge``)."""
    t = report.totals
    meta = report.meta
    lines = [
        f"target   {meta.get('url', '?')}  scenario={meta.get('scenario', '?')}  "
        f"clock={meta.get('clock', '?')}",
        *([f"machine  {describe(meta['machine'])} (load generator's host)"]
          if isinstance(meta.get("machine"), dict) else []),
        f"run      {report.duration_s:.1f} s, {t['connectionsOpened']} connections "
        f"({t['connectFailed']} failed), offered {meta.get('rate', '?')}/s, "
        f"achieved sent {report.achieved()['sentPerS']}/s received {report.achieved()['receivedPerS']}/s",
        f"frames   sent {t['sent']}  expected {t['expected']}  received {t['received']}  "
        f"lost {t['lost']}  duplicated {t['duplicated']}  out-of-order {t['outOfOrder']}  "
        f"unexpected {t['unexpected']}",
        f"errors   {t['errorFrames']} error frames {dict(report.errors) or ''}  "
        f"close codes {dict(report.close_codes) or '{}'}",
        *([_warmup_line(meta)] if "warmupS" in meta else []),
        *(_join_storm_lines(meta["joinStorm"]) if isinstance(meta.get("joinStorm"), dict) else []),
        *(_broadcast_lines(meta["broadcast"]) if isinstance(meta.get("broadcast"), dict) else []),
        *_generator_lines(meta),
        *([f"acks     {t['acks']} acks  {t['nacks']} nacks  {t['retries']} retries  "
           f"{t['ackGaveUp']} given up  {t['ackMissing']} unanswered"]
          if t["acks"] or t["nacks"] or t["ackMissing"] else []),
        "",
        f"{'latency (ms)':<24}{'count':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}",
    ]
    order = ["join", "latency", "service", "ingest"] + [f"stage:{name}" for name, _, _ in STAGES]
    labels = {"latency": "from intended send", "service": "from actual send",
              "ingest": "ingest (1st send -> ack)", "join": "join -> joined"}
    if meta.get("scenario") == "join-storm":
        labels["latency"] = "publish -> broadcast"
    for name in order:
        if name not in report.histograms:
            continue
        p = histo.percentiles_ms(report.histograms[name])
        label = labels.get(name, "  " + name.removeprefix("stage:"))
        lines.append(
            f"{label:<24}{p['count']:>9}"
            + "".join(f"{_fmt(p[k]):>9}" for k in ("p50", "p90", "p99", "p99.9", "max"))
        )
    if meta.get("clock") == "remote":
        lines.append("(remote target: only server-to-server stages are comparable; clocks differ)")
    return "\n".join(lines)


def _generator_lines(meta: dict[str, Any]) -> list[str]:
    """The load generator's own cost (CPU per frame), and a line per Locust worker."""
    lines = []
    if "generatorCpuPerFrameUs" in meta:
        engine = meta.get("engine", "asyncio")
        workers = f", {meta['workerCount']} workers" if "workerCount" in meta else ""
        lines.append(f"generator {meta['generatorCpuPerFrameUs']:g} us CPU per frame "
                     f"({engine}{workers})")  # fmt: skip
    for row in meta.get("workers", []) if isinstance(meta.get("workers"), list) else []:
        name = str(row.get("worker"))
        lines.append(f"  {name if name == 'publisher' else 'worker ' + name[-8:]}: "
                     f"{row.get('connectionsOpened')} conns, "
                     f"sent {row.get('sent')} ({row.get('sentPerS')}/s), received "
                     f"{row.get('received')}, lost {row.get('lost')}, "
                     f"{row.get('generatorCpuPerFrameUs')} us CPU/frame")  # fmt: skip
    return lines


def _join_storm_lines(storm: dict[str, Any]) -> list[str]:
    """The join storm's facts (loadtest/join_storm.py)."""
    p, b, j = storm.get("presence", {}), storm.get("broadcast", {}), storm.get("joinMs", {})
    return [
        f"joins    {storm.get('joined')} of {storm.get('members')} answered `joined` "
        f"({storm.get('joinMissing')} missing) in {storm.get('stormS')} s; "
        f"join -> joined p50 {_fmt(j.get('p50', 0))} p99 {_fmt(j.get('p99', 0))} "
        f"max {_fmt(j.get('max', 0))} ms",
        f"presence {p.get('frames')} frames, per member min {p.get('perMemberMin')} mean "
        f"{p.get('perMemberMean')} max {p.get('perMemberMax')} (bound: one per "
        f"{p.get('windowMs')} ms window, at most {p.get('boundMax')}; {p.get('overBound')} over; "
        f"cap {p.get('maxMembers')} members)",
        f"broadcast {b.get('exactlyOnce')} of {b.get('expected')} members exactly once, "
        f"{b.get('duplicated')} duplicates, {b.get('lost')} lost; publish -> first member "
        f"{b.get('toFirstMemberMs')} ms, last member {b.get('toLastMemberMs')} ms",
    ]


def _broadcast_lines(b: dict[str, Any]) -> list[str]:
    """Broadcast on Locust's facts (loadtest/live_broadcast.py)."""
    last = b.get("toLastMemberMs", {})
    return [
        f"broadcast {b.get('published')} messages ({b.get('publishFailed')} failed) to "
        f"{b.get('members')} members ({b.get('joined')} joined): {b.get('exactlyOnce')} members "
        f"got every one exactly once, {b.get('lost')} lost, {b.get('duplicated')} duplicates, "
        f"{b.get('outOfOrderMembers')} members out of order",
        f"          publish -> last member p50 {_fmt(last.get('p50', 0))} p99 "
        f"{_fmt(last.get('p99', 0))} max {_fmt(last.get('max', 0))} ms over "
        f"{b.get('completeMessages')} messages every member got; first delivery "
        f"{b.get('firstDeliveryS')} s, last {b.get('lastDeliveryS')} s after the first publish",
    ]


def _warmup_line(meta: dict[str, Any]) -> str:
    warm = meta.get("warmup")
    if not meta.get("warmupS") or not isinstance(warm, dict):
        return "warm-up  none: the first seconds include cold starts (--warmup SECONDS)"
    return (f"warm-up  {meta['warmupS']:g} s before measuring, not recorded: "
            f"{warm.get('connections')} connections, {warm.get('sent')} frames sent, "
            f"{warm.get('received')} answered")


def _fmt(ms: float | int) -> str:
    if not math.isfinite(float(ms)):
        return "-"
    return f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"
