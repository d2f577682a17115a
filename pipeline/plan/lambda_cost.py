"""The measured Lambda cost the planner prices duration with: ``lambda_cost.json``.

``python -m loadtest.bench`` (or ``python -m loadtest.bench_cost --write``) writes it: per
consumer, the billed milliseconds per 1,000 records at full batches (the handler's own timing,
each invocation rounded up to 1 ms as Lambda bills), and the run it came from (command, date,
machine). A plan names that run next to the figure it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.plan import PlanError, read_json

LAMBDA_COST_FILE = Path(__file__).with_name("lambda_cost.json")


@dataclass(frozen=True)
class MeasuredCost:
    """Billed ms per 1,000 records per consumer, at ``batch_size``, from the run ``source``."""

    batch_size: int
    billed_ms_per_1000: dict[str, float]
    source: str

    def worst(self) -> tuple[str, float]:
        """The consumer with the most billed time per record, and its figure (a plan that
        does not know which consumer a frame goes to prices every frame at the dearest)."""
        name = max(self.billed_ms_per_1000, key=lambda k: self.billed_ms_per_1000[k])
        return name, self.billed_ms_per_1000[name]


def load_lambda_cost(path: Path = LAMBDA_COST_FILE) -> MeasuredCost:
    """Read and check a measured cost file (a figure per consumer and the run it came from)."""
    raw = read_json(path, "the measured Lambda cost")
    consumers = raw.get("consumers") if isinstance(raw, dict) else None
    source = raw.get("source") if isinstance(raw, dict) else None
    batch = raw.get("batchSize") if isinstance(raw, dict) else None
    if not isinstance(consumers, dict) or not consumers:
        raise PlanError(f"{path}: needs a 'consumers' object with at least one consumer")
    if not isinstance(source, dict) or not all(
            isinstance(source.get(k), str) and source[k] for k in ("command", "date", "machine")):
        raise PlanError(f"{path}: 'source' must name the run: command, date and machine")
    if not isinstance(batch, int) or batch < 1:
        raise PlanError(f"{path}: batchSize must be a positive integer")
    figures: dict[str, float] = {}
    for name, entry in consumers.items():
        value = entry.get("billedMsPer1000") if isinstance(entry, dict) else None
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise PlanError(f"{path}: {name}: billedMsPer1000 must be a number > 0")
        figures[str(name)] = float(value)
    run = f"`{source['command']}`, {source['date']}, {source['machine']}"
    return MeasuredCost(batch, figures, run)
