"""Fixtures: see tests/runtime/runtime_fixtures.py (shared with tests/runtime)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runtime"))

from runtime_fixtures import atconn, aws_env, connections, ctx, ddb, roster  # noqa: F401
