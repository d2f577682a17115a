"""The CDK app: one construct per logical unit and the stack that wires them.

Exceptions::

    InfrastructureError
    ├── ConfigError        bad CDK context (stage, shards, auth, retentionHours, streamMode, ...)
    ├── TemplateError      an integration template is missing or has unknown placeholders
    └── PackagingError     the shared layer could not be built
"""

from __future__ import annotations


class InfrastructureError(Exception):
    """Base of every error raised while building the CDK app."""


class ConfigError(InfrastructureError):
    """A CDK context value is invalid."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        super().__init__(f"context {key}={value!r} is invalid: expected {expected}")
        self.key = key
        self.value = value
        self.expected = expected


class TemplateError(InfrastructureError):
    """An integration template cannot be rendered."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class PackagingError(InfrastructureError):
    """The shared Lambda layer could not be built."""
