"""Serverless WebSocket pipeline: API Gateway -> VTL -> Kinesis -> enhanced fan-out consumers."""

from __future__ import annotations

from pathlib import Path

# The project checkout: consumers/, cdk.json, pyproject.toml live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
