"""airspeed-ext's method table (the Java methods API Gateway's Velocity offers) and its namespace.

airspeed looks a value's methods up in ``airspeed.operators.__additional_methods__`` by exact
class; the twin adds to it (the table is module state of airspeed, so this is the one writer).
:func:`template_namespace` hands a render its variables in airspeed's own namespace class.
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


def template_namespace(variables: Mapping[str, Any]) -> Any:
    """A render's top-level variables in airspeed's ``LocalNamespace``, fresh for each render.

    Given a plain dict, airspeed wraps it in a ``LocalNamespace`` (where ``#set`` writes) and
    finds every top-level reference (``$context``, ``$util``, ``$input``) by a missed lookup in
    the wrapper first: a KeyError raised and caught per reference, ~16 a PutRecord render.
    Holding the variables in the namespace airspeed evaluates in skips those misses; ``#set``,
    ``#foreach`` and macros behave as before (macros go to the fresh, empty parent: the top).
    The version was checked when this module's first :func:`add_methods` ran (at import).
    """
    namespace = _airspeed_ops.LocalNamespace({})
    namespace.update(variables)
    return namespace


def null_loader() -> Any:
    """airspeed's loader for templates that include nothing."""
    return _airspeed_ops.NullLoader()
