"""The results of a verify run: one :class:`CheckResult` per check, as a table and as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "fail", "skip"]
DETAIL_WIDTH = 100


class CheckFailed(Exception):
    """A check saw the wrong behaviour; the message says what it saw."""


class CheckSkipped(Exception):
    """A check cannot run here (no credentials, a prerequisite failed); the message says why."""


@dataclass(frozen=True)
class CheckResult:
    """One check: its fixed name, pass/fail/skip, what it saw, and how long it took (ms)."""

    name: str
    status: Status
    detail: str
    ms: float | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON entry: ``name``, ``status``, ``detail``, ``ms`` (``null`` when not run)."""
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "ms": None if self.ms is None else round(self.ms, 1)}


def passed(results: Sequence[CheckResult]) -> bool:
    """True when no check failed (skips do not fail a run)."""
    return all(r.status != "fail" for r in results)


def render_table(results: Sequence[CheckResult]) -> str:
    """A plain-text table, one row per check (long details wrap onto continuation lines)."""
    name_w = max([len("check"), *(len(r.name) for r in results)])
    rows = [f"{'check':<{name_w}}  status  {'ms':>7}  detail",
            f"{'-' * name_w}  ------  {'-' * 7}  {'-' * 6}"]
    for r in results:
        ms = "-" if r.ms is None else f"{r.ms:.0f}"
        lines = _wrap(r.detail, DETAIL_WIDTH) or [""]
        rows.append(f"{r.name:<{name_w}}  {r.status:<6}  {ms:>7}  {lines[0]}")
        rows.extend(f"{'':<{name_w}}  {'':<6}  {'':>7}  {line}" for line in lines[1:])
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
    rows.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return "\n".join(rows)


def write_json(path: Path, url: str, results: Sequence[CheckResult]) -> None:
    """``{"url", "passed", "checks": [{name, status, detail, ms}, ...]}`` to ``path``."""
    document = {"url": url, "passed": passed(results), "checks": [r.as_dict() for r in results]}
    path.write_text(json.dumps(document, indent=2) + "\n")


def _wrap(text: str, width: int) -> list[str]:
    words = text.split(" ")
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines
