"""``MappingConfig``: the resolved properties of one ``AWS::Lambda::EventSourceMapping``.

Defaults are Lambda's for Kinesis sources; the ranges are ``pipeline.aws.limits``' ``ESM_*``:
https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html
"""

from __future__ import annotations

import json
import uuid as uuid_mod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.aws.filters import validate_pattern
from pipeline.aws.limits import (
    ESM_BATCH_SIZE,
    ESM_BATCHING_WINDOW_S,
    ESM_PARALLELIZATION_FACTOR,
    ESM_RECORD_AGE_MIN_S,
    ESM_RECORD_AGE_S,
    ESM_RETRY_ATTEMPTS,
    ESM_TUMBLING_WINDOW_S,
    Range,
)

from .errors import InvalidMappingConfigError

STARTING_POSITIONS = ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP")
_UUID_NAMESPACE = uuid_mod.UUID("5b0c6f1e-4d1a-4a39-9d6b-2f1f2a0e7c11")


@dataclass(frozen=True)
class MappingConfig:
    """Everything the engine needs from an event source mapping (AWS defaults)."""

    uuid: str
    function_name: str  # a name or a function ARN
    event_source_arn: str  # a stream ARN or an enhanced fan-out consumer ARN
    batch_size: int = 100
    maximum_batching_window_s: float = 0.0
    starting_position: str = "LATEST"
    starting_position_timestamp: float | None = None
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1  # -1 = infinite (the AWS default)
    maximum_record_age_s: int = -1  # -1 = infinite (the AWS default)
    parallelization_factor: int = 1
    report_batch_item_failures: bool = False
    filters: tuple[dict[str, Any], ...] = ()  # parsed patterns, OR'ed
    on_failure_destination_arn: str | None = None
    enabled: bool = True
    tumbling_window_s: int = 0

    @classmethod
    def from_cfn(cls, properties: Mapping[str, Any], *, logical_id: str) -> MappingConfig:
        """Build from the template's (intrinsic-resolved) properties; raise
        :class:`InvalidMappingConfigError` for what Lambda would refuse."""
        p = _Props(properties, logical_id)
        position = p.string("StartingPosition", "LATEST")
        if position not in STARTING_POSITIONS:
            raise p.error("StartingPosition", f"must be one of {', '.join(STARTING_POSITIONS)}")
        timestamp = p.number_or_none("StartingPositionTimestamp")
        if position == "AT_TIMESTAMP" and timestamp is None:
            raise p.error("StartingPositionTimestamp", "is required with AT_TIMESTAMP")
        age = p.integer("MaximumRecordAgeInSeconds", -1, ESM_RECORD_AGE_S)
        if age != -1 and age < ESM_RECORD_AGE_MIN_S:
            raise p.error("MaximumRecordAgeInSeconds",
                          f"must be -1 or {ESM_RECORD_AGE_MIN_S}..{ESM_RECORD_AGE_S.high}")
        response_types = p.get("FunctionResponseTypes") or []
        if not isinstance(response_types, list) or any(
            t != "ReportBatchItemFailures" for t in response_types
        ):
            raise p.error("FunctionResponseTypes", "only ReportBatchItemFailures is valid")
        return cls(
            uuid=str(properties.get("Id") or uuid_mod.uuid5(_UUID_NAMESPACE, logical_id)),
            function_name=p.string("FunctionName"),
            event_source_arn=p.string("EventSourceArn"),
            batch_size=p.integer("BatchSize", 100, ESM_BATCH_SIZE),
            maximum_batching_window_s=float(p.integer("MaximumBatchingWindowInSeconds", 0, ESM_BATCHING_WINDOW_S)),
            starting_position=position,
            starting_position_timestamp=timestamp,
            bisect_batch_on_function_error=p.boolean("BisectBatchOnFunctionError", False),
            maximum_retry_attempts=p.integer("MaximumRetryAttempts", -1, ESM_RETRY_ATTEMPTS),
            maximum_record_age_s=age,
            parallelization_factor=p.integer("ParallelizationFactor", 1, ESM_PARALLELIZATION_FACTOR),
            report_batch_item_failures="ReportBatchItemFailures" in response_types,
            filters=p.filters(),
            on_failure_destination_arn=p.destination(),
            enabled=p.boolean("Enabled", True),
            tumbling_window_s=p.integer("TumblingWindowInSeconds", 0, ESM_TUMBLING_WINDOW_S),
        )


class _Props:
    """Typed, validating access to raw CloudFormation properties (values may be strings)."""

    def __init__(self, properties: Mapping[str, Any], logical_id: str) -> None:
        self._p = properties
        self._id = logical_id

    def error(self, prop: str, message: str) -> InvalidMappingConfigError:
        return InvalidMappingConfigError(message, logical_id=self._id, prop=prop)

    def get(self, prop: str) -> Any:
        return self._p.get(prop)

    def string(self, prop: str, default: str | None = None) -> str:
        value = self._p.get(prop, default)
        if not isinstance(value, str) or not value:
            raise self.error(prop, "must be a non-empty string (is it resolved?)")
        return value

    def integer(self, prop: str, default: int, allowed: Range) -> int:
        value = self._p.get(prop, default)
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            number = int(value)
        except (TypeError, ValueError):
            raise self.error(prop, f"must be an integer, got {value!r}") from None
        if number not in allowed:
            raise self.error(prop, f"must be {allowed.low}..{allowed.high}, got {number}")
        return number

    def number_or_none(self, prop: str) -> float | None:
        value = self._p.get(prop)
        if value is None:
            return None
        try:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        except (TypeError, ValueError):
            raise self.error(prop, f"must be a number, got {value!r}") from None

    def boolean(self, prop: str, default: bool) -> bool:
        value = self._p.get(prop, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.error(prop, f"must be a boolean, got {value!r}")

    def filters(self) -> tuple[dict[str, Any], ...]:
        criteria = self._p.get("FilterCriteria")
        if criteria is None:
            return ()
        entries = criteria.get("Filters", []) if isinstance(criteria, Mapping) else None
        if not isinstance(entries, list):
            raise self.error("FilterCriteria", "must be {\"Filters\": [{\"Pattern\": ...}]}")
        patterns: list[dict[str, Any]] = []
        for entry in entries:
            raw = entry.get("Pattern") if isinstance(entry, Mapping) else None
            try:
                pattern = json.loads(raw) if isinstance(raw, str) else raw
            except ValueError as exc:
                raise self.error("FilterCriteria", f"pattern is not JSON: {exc}") from None
            if not isinstance(pattern, dict):
                raise self.error("FilterCriteria", f"pattern must be a JSON object: {raw!r}")
            try:
                validate_pattern(pattern)
            except ValueError as exc:
                raise self.error("FilterCriteria", str(exc)) from None
            patterns.append(pattern)
        return tuple(patterns)

    def destination(self) -> str | None:
        config = self._p.get("DestinationConfig")
        if config is None:
            return None
        on_failure = config.get("OnFailure") if isinstance(config, Mapping) else None
        if on_failure is None:
            return None
        arn = on_failure.get("Destination") if isinstance(on_failure, Mapping) else None
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            raise self.error("DestinationConfig", f"OnFailure.Destination must be an ARN: {arn!r}")
        return arn
