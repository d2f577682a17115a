"""The load test's JSON report, as far as the product's tools read it, and where it is written.

``python -m loadtest`` writes the report (``loadtest/report.py`` takes its tool name and version
from here); ``python -m pipeline plan --from-loadtest`` reads its summary with :func:`read_summary`.
The format is defined once, here, so the product never imports the load test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_TOOL = "loadtest"  # the report's "tool"
REPORT_VERSION = 1  # the report's "version"
# Where a bare output file name (``--json run.json``) goes: git-ignored, never the repo root.
RESULTS_DIR = Path("loadtest-results")


class ReportFormatError(ValueError):
    """A file that is not a load-test report of this version; ``str(exc)`` names the file."""


def output_path(path: Path | None) -> Path | None:
    """``run.json`` -> ``loadtest-results/run.json``; a path with a folder is used as given."""
    if path is None or path.is_absolute() or path.parent != Path("."):
        return path
    return RESULTS_DIR / path


def check_header(data: Any, source: str) -> None:
    """Raise :class:`ReportFormatError` unless ``data`` is a report of :data:`REPORT_VERSION`."""
    if not isinstance(data, dict) or data.get("tool") != REPORT_TOOL:
        raise ReportFormatError(f"{source}: not a loadtest report")
    if data.get("version") != REPORT_VERSION:
        raise ReportFormatError(
            f"{source}: report version {data.get('version')!r} is not {REPORT_VERSION}")


@dataclass(frozen=True)
class ReportSummary:
    """What a run was (``meta``: scenario, connections, rate, ...), how long, and its counters."""

    meta: dict[str, Any]
    duration_s: float
    totals: dict[str, int]


def read_summary(path: Path) -> ReportSummary:
    """The summary of the report at ``path``; :class:`ReportFormatError` when it is not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportFormatError(f"{path}: cannot read JSON ({exc})") from exc
    check_header(data, str(path))
    try:
        return ReportSummary(dict(data.get("meta", {})), float(data["durationS"]),
                             {str(k): int(v) for k, v in data["totals"].items()})
    except Exception as exc:  # malformed input of any shape gets one clear error
        raise ReportFormatError(
            f"{path}: malformed report ({type(exc).__name__}: {exc})") from exc
