"""The benchmark table of ``python -m loadtest.bench``: measured figures in, rows and Markdown out.

Pure (no I/O), so the rows' names and shapes are tested without measuring anything. A script
finds its figures in the ``--json`` rows by these rules, which the names keep unambiguous:

- the floor's zero-loss rate reads ``N frames/s (floor)`` in a row's value or baseline;
- the CPU per @connections post, in µs, is in the rows whose name says ``post`` (and only they);
- the echo worker's CPU per record, in µs, is in the one row whose name says ``record``;
- each consumer's cold import, in ms, is in a row whose name says ``import`` (and only they);
- the echo handler's load + first batch in a fresh interpreter, CPU ms, is in the one row whose
  name says ``first batch`` and ``CPU``; whether that batch loaded boto3 (``yes``/``no``) in the
  one whose name says ``loads boto3``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CPU_RATE = 1000  # frames/s at which the CPU per echo frame is sampled
GOAL_SHARE_OF_FLOOR = 0.50  # the twin's zero-loss rate, at least this share of the floor's
GOAL_P50_OF_BARE = 3.0  # the twin's round trip p50, at most this many times the bare server's


@dataclass
class Row:
    """One line of the table: the pipeline's figure, the baseline's, and their ratio."""

    name: str
    value: str
    baseline: str = ""
    ratio: str = ""


@dataclass
class EchoServerFigures:
    """One echo server's figures in a run (None: not measured)."""

    label: str  # "twin", "floor", "bare ws"
    rtt: dict[str, float] | None = None  # p50 / p99 ms, count, lost
    rate: float | None = None  # highest zero-loss frames/s
    cpu_us: tuple[float, float] | None = None  # (server process, workers) µs per frame
    steps: list[str] = field(default_factory=list)


@dataclass
class Measured:
    """Everything one run measured."""

    frames: int  # sequential frames per round trip figure
    bare: EchoServerFigures
    floor: EchoServerFigures
    twin: EchoServerFigures
    post: list[tuple[str, str, str, str]] | None = None  # loadtest.bench_post.rows
    imports: list[tuple[str, str, str, str]] | None = None  # loadtest.bench_import.rows
    # loadtest.bench_import.first_batch_rows
    first_batch: list[tuple[str, str, str, str]] | None = None
    extra: list[Row] = field(default_factory=list)  # decode, fan-out, room broadcast


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def _rtt_rows(m: Measured, subject: EchoServerFigures) -> list[Row]:
    rows = []
    for key in ("p50", "p99"):
        name = f"echo round trip {key}, 1 client, {m.frames} sequential: {subject.label} vs bare"
        if subject.rtt is None or m.bare.rtt is None:
            rows.append(Row(name, f"n/a ({subject.label} missing)"))
            continue
        mine, bare = subject.rtt[key], m.bare.rtt[key]
        goal = (f" (goal <= {GOAL_P50_OF_BARE:g}x)"
                if subject is m.twin and key == "p50" else "")
        rows.append(Row(name, f"{mine:.2f} ms ({subject.label})", f"{bare:.2f} ms (bare ws)",
                        ratio(mine, bare) + goal))
    return rows


def _rate(f: EchoServerFigures) -> str:
    # no thousands separator: "4000 frames/s (floor)" is what a script looks for
    return f"{f.rate:.0f} frames/s ({f.label})" if f.rate is not None else f"n/a ({f.label})"


def _rate_rows(m: Measured) -> list[Row]:
    rows = []
    for subject, base, goal in ((m.twin, m.floor, GOAL_SHARE_OF_FLOOR),
                                (m.floor, m.bare, None), (m.twin, m.bare, None)):
        name = (f"zero-loss echo rate (p99 < 1 s): {subject.label} vs "
                f"{'bare' if base is m.bare else base.label}")
        share = "-"
        if subject.rate is not None and base.rate:
            share = f"{100 * subject.rate / base.rate:.0f} % of {base.label}"
            if goal is not None:
                share += f" (goal >= {100 * goal:.0f} %)"
        rows.append(Row(name, _rate(subject), _rate(base), share))
    return rows


def _cpu_rows(m: Measured) -> list[Row]:
    rows = []
    for i, part in enumerate(("server process", "worker processes")):
        name = f"CPU per echo frame at {CPU_RATE} frames/s, {part}: twin vs floor"
        twin = m.twin.cpu_us[i] if m.twin.cpu_us else None
        floor = m.floor.cpu_us[i] if m.floor.cpu_us else None
        rows.append(Row(name, f"{twin:.0f} µs (twin)" if twin is not None else "n/a (twin)",
                        f"{floor:.0f} µs (floor)" if floor is not None else "n/a (floor)",
                        ratio(twin, floor) if twin is not None and floor is not None else "-"))
    return rows


def build(m: Measured) -> list[Row]:
    """Every row of the table, in reading order."""
    rows = [*_rate_rows(m), *_rtt_rows(m, m.twin), *_rtt_rows(m, m.floor), *_cpu_rows(m)]
    if m.post is None:
        rows.append(Row("@connections CPU per post", "n/a (bench_post failed)"))
    else:
        rows += [Row(*r) for r in m.post]
    if m.imports is None:
        rows.append(Row("cold start: import consumer handlers", "n/a (bench_import failed)"))
    else:
        rows += [Row(*r) for r in m.imports]
    if m.first_batch is None:
        rows.append(Row("cold start: echo load + first batch", "n/a (bench_import failed)"))
    else:
        rows += [Row(*r) for r in m.first_batch]
    return rows + m.extra


def notes(m: Measured) -> list[str]:
    """The throughput search's steps, per server, and any sequential loss."""
    out = []
    for f in (m.twin, m.floor, m.bare):
        if f.rtt is not None and f.rtt.get("lost"):
            out.append(f"sequential echo through the {f.label}: {f.rtt['lost']:.0f} replies "
                       "timed out")
        out += [f"{f.label} {s}" for s in f.steps]
    return out


def markdown(info: dict[str, str], rows: list[Row], notes: list[str], *, command: str,
             date: str, seconds: float, load_end: str) -> str:
    """``docs/benchmarks.md``: the machine, the date, the command and every row of one run."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {date} in {seconds:.0f} s; do not edit by hand (run it "
        "again). Every ratio compares two figures measured in this same run on this machine; "
        "absolute figures move 2-4x between machines and with the box's load.",
        "",
        f"- machine: {info.get('cores', '?')} cores, {info.get('cpu', '?')}, Python "
        f"{info.get('python', '?')}, {info.get('platform', '?')}",
        f"- load average (1 min): {info.get('load', '?')} at the start, {load_end} at the end",
        "- bare ws: `loadtest.echo_server` (a WebSocket echo, nothing else); floor: "
        "`loadtest.floor_server` (the twin's hops alone: WebSocket, a worker process, the "
        "runtime's signed @connections POST, WebSocket); twin: `python -m pipeline local`",
        "",
        "| figure | measured | baseline (same run) | ratio |",
        "|---|---|---|---|",
        *(f"| {cell(r.name)} | {cell(r.value)} | {cell(r.baseline)} | {cell(r.ratio)} |"
          for r in rows),
    ]
    if notes:
        lines += ["", "Throughput search steps (each: 1 s warm-up, 3 s measured, drained):", ""]
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
