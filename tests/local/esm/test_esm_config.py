"""MappingConfig.from_cfn: Lambda's defaults, ranges and refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.local.esm import InvalidMappingConfigError, MappingConfig

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/s"


def props(**extra: Any) -> dict[str, Any]:
    return {"FunctionName": "echo-fn", "EventSourceArn": STREAM, "StartingPosition": "LATEST",
            **extra}


def test_defaults_are_lambdas() -> None:
    cfg = MappingConfig.from_cfn(props(), logical_id="M")
    assert (cfg.batch_size, cfg.maximum_batching_window_s) == (100, 0.0)
    assert (cfg.maximum_retry_attempts, cfg.maximum_record_age_s) == (-1, -1)
    assert cfg.parallelization_factor == 1 and cfg.enabled and not cfg.report_batch_item_failures
    assert cfg.filters == () and cfg.on_failure_destination_arn is None
    assert cfg.uuid == MappingConfig.from_cfn(props(), logical_id="M").uuid  # deterministic


def test_full_properties_as_the_stack_writes_them() -> None:
    cfg = MappingConfig.from_cfn(
        props(
            BatchSize="50", MaximumBatchingWindowInSeconds=1, BisectBatchOnFunctionError="true",
            MaximumRetryAttempts=3, MaximumRecordAgeInSeconds=3600, ParallelizationFactor=2,
            FunctionResponseTypes=["ReportBatchItemFailures"], Enabled=False,
            StartingPosition="AT_TIMESTAMP", StartingPositionTimestamp=1700000000.5,
            FilterCriteria={"Filters": [{"Pattern": json.dumps({"data": {"routeKey": ["echo"]}})}]},
            DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:1:dlq"}},
        ),
        logical_id="M",
    )
    assert cfg.batch_size == 50 and cfg.maximum_batching_window_s == 1.0
    assert cfg.bisect_batch_on_function_error and cfg.report_batch_item_failures
    assert (cfg.maximum_retry_attempts, cfg.maximum_record_age_s) == (3, 3600)
    assert cfg.parallelization_factor == 2 and not cfg.enabled
    assert cfg.starting_position_timestamp == 1700000000.5
    assert cfg.filters == ({"data": {"routeKey": ["echo"]}},)
    assert cfg.on_failure_destination_arn == "arn:aws:sqs:us-east-1:1:dlq"


@pytest.mark.parametrize(
    ("extra", "prop"),
    [
        ({"BatchSize": 0}, "BatchSize"),
        ({"BatchSize": 10_001}, "BatchSize"),
        ({"BatchSize": "many"}, "BatchSize"),
        ({"MaximumBatchingWindowInSeconds": 301}, "MaximumBatchingWindowInSeconds"),
        ({"MaximumRetryAttempts": -2}, "MaximumRetryAttempts"),
        ({"MaximumRecordAgeInSeconds": 30}, "MaximumRecordAgeInSeconds"),
        ({"ParallelizationFactor": 11}, "ParallelizationFactor"),
        ({"StartingPosition": "EARLIEST"}, "StartingPosition"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "StartingPositionTimestamp"),
        ({"FunctionName": {"Ref": "Fn"}}, "FunctionName"),
        ({"Enabled": "maybe"}, "Enabled"),
        ({"FunctionResponseTypes": ["Everything"]}, "FunctionResponseTypes"),
        ({"FilterCriteria": {"Filters": [{"Pattern": "{not json"}]}}, "FilterCriteria"),
        ({"FilterCriteria": {"Filters": [{"Pattern": '{"data": "x"}'}]}}, "FilterCriteria"),
        ({"DestinationConfig": {"OnFailure": {"Destination": "queue"}}}, "DestinationConfig"),
    ],
)
def test_invalid_properties_raise_invalid_parameter_value(extra: dict[str, Any], prop: str) -> None:
    with pytest.raises(InvalidMappingConfigError) as info:
        MappingConfig.from_cfn(props(**extra), logical_id="EchoMapping")
    assert info.value.code == "InvalidParameterValueException" and info.value.status == 400
    assert info.value.prop == prop and str(info.value).startswith(f"EchoMapping.{prop}: ")
