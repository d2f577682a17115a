"""A retry policy for tests: the runtime's attempts and backoff shape, in milliseconds."""

from __future__ import annotations

from pipeline.runtime import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=4, base_s=0.001, cap_s=0.005)
