"""``python -m pipeline plan``: shards, concurrency, quotas and monthly cost for a traffic shape.

``model.py`` is pure (traffic shape + prices in, plan out), ``prices.py`` reads ``prices.json``
(every figure with its AWS page and the date it was read), ``cli.py`` is the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class PlanError(ValueError):
    """A traffic shape, a prices file or a load-test report the planner cannot use."""


def read_json(path: Path, what: str) -> Any:
    """A data file of plan's (prices, measured cost), or a :class:`PlanError` naming ``what``."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: cannot read {what}: {exc}") from exc
