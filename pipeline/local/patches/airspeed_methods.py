"""airspeed-ext's method table: the Java methods API Gateway's Velocity offers.

airspeed looks a value's methods up in ``airspeed.operators.__additional_methods__`` by exact
class; the twin adds to it (the table is module state of airspeed, so this is the one writer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airspeed import operators as _airspeed_ops

from pipeline.local.patches import require


def add_methods(cls: type, methods: Mapping[str, Callable[..., Any]],
                *, like: type | None = None) -> None:
    """Give *cls* the *methods* (plus, when *like* is given, every method airspeed gives *like*)."""
    require("airspeed-ext")
    table: dict[type, dict[str, Callable[..., Any]]] = _airspeed_ops.__additional_methods__
    base = dict(table[like]) if like is not None else dict(table.get(cls, {}))
    table[cls] = {**base, **methods}


def null_loader() -> Any:
    """airspeed's loader for templates that include nothing."""
    return _airspeed_ops.NullLoader()
