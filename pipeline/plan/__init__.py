"""``python -m pipeline plan``: shards, concurrency, quotas and monthly cost for a traffic shape.

``model.py`` is pure (traffic shape + prices in, plan out), ``prices.py`` reads ``prices.json``
(every figure with its AWS page and the date it was read), ``cli.py`` is the command.
"""

from __future__ import annotations


class PlanError(ValueError):
    """A traffic shape, a prices file or a load-test report the planner cannot use."""
