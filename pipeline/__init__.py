"""Serverless WebSocket pipeline: API Gateway -> VTL -> Kinesis -> enhanced fan-out consumers."""

from __future__ import annotations

from pathlib import Path

# The project checkout: consumers/, cdk.json, pyproject.toml live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The Region a client falls back to when neither its caller, its URL nor AWS_REGION /
# AWS_DEFAULT_REGION names one; also the local twin's Region (``pipeline.aws.limits.REGION``).
# Defined here because this module ships in the Lambda layer beside ``pipeline/runtime``.
DEFAULT_REGION = "us-east-1"
