"""The load test's exceptions.

::

    LoadTestError
    ├── ConfigError     bad command line / run settings (exit code 2)
    ├── ReportError     a JSON report that cannot be read or merged
    └── TargetError     the target cannot be reached or started
"""

from __future__ import annotations


class LoadTestError(Exception):
    """Base of every error the load test raises on purpose."""


class ConfigError(LoadTestError):
    """Invalid settings; ``option`` names the offending flag."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class ReportError(LoadTestError):
    """A report file is unreadable, of another version, or incompatible for a merge."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class TargetError(LoadTestError):
    """The target (twin or deployed stage) is not reachable, or the twin failed to start."""
