"""A resolved :class:`Stack` from hand-written resources, for tests of the twin's parts.

Tests write resources in the template's shape with every intrinsic already resolved:
``{logicalId: {"Type": ..., "Properties": {...}, "Ref": ...}}`` ("Ref" defaults to the logical id).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.local.cfn import Resource, Stack


def stack_of(resources: Mapping[str, Mapping[str, Any]], name: str = "Test") -> Stack:
    """The :class:`Stack` the resolver would have produced for these resolved *resources*."""
    return Stack(name, Path("/nowhere"), {
        lid: Resource(lid, str(spec.get("Type")), dict(spec.get("Properties") or {}),
                      {}, str(spec.get("Ref", lid)), {})
        for lid, spec in resources.items()})
