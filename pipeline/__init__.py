"""Serverless WebSocket pipeline: API Gateway -> VTL -> Kinesis -> enhanced fan-out consumers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

# The project checkout: consumers/, cdk.json, pyproject.toml live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The Region a client falls back to when neither its caller, its URL nor AWS_REGION /
# AWS_DEFAULT_REGION names one; also the local twin's Region (``pipeline.aws.limits.REGION``).
# Defined here because this module ships in the Lambda layer beside ``pipeline/runtime``.
DEFAULT_REGION = "us-east-1"

DISTRIBUTION = "websocket-pipeline"  # pyproject.toml's [project].name


def entry_points(group: str) -> list[EntryPoint]:
    """This distribution's entry points in ``group`` (pyproject.toml): read from its own metadata
    only (~0.3 ms), not by scanning every installed distribution's (~50-90 ms a start here)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        return [ep for ep in distribution(DISTRIBUTION).entry_points if ep.group == group]
    except PackageNotFoundError:  # run from a checkout that was never installed
        return []
