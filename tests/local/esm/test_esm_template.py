"""Every event source mapping of the synthesized stack parses, and its filter routes envelopes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pipeline.aws.filters import record_matches
from pipeline.local.esm import MappingConfig, StoredRecord
from pipeline.registry import load_all

pytestmark = [
    pytest.mark.synth,
    pytest.mark.skipif(
        importlib.util.find_spec("pipeline.local.cfn") is None
        or importlib.util.find_spec("pipeline.infrastructure.synth") is None,
        reason="needs the CDK app and the twin's template resolver",
    ),
]


def envelope(route: str, key: str = "conn-1") -> StoredRecord:
    data = json.dumps({"v": 1, "routeKey": route, "eventType": "MESSAGE", "body": "{}"})
    return StoredRecord("1", key, data.encode(), 1.0)


def kpl_record(route_key: str) -> StoredRecord:
    """A real KPL-aggregated record of two server envelopes (aws-kinesis-agg)."""
    from pipeline.aws.kpl import RecordAggregator

    aggregator = RecordAggregator()
    for n in range(2):
        envelope_json = json.dumps({"v": 1, "routeKey": route_key, "eventType": "SERVER",
                                    "connectionId": "", "body": json.dumps({"n": n})})
        aggregator.add_user_record(f"broadcast#room{n}", envelope_json.encode())
    partition_key, _, data = aggregator.clear_and_get().get_contents()
    return StoredRecord("1", partition_key, data, 1.0)


def test_stack_mappings_parse_and_route_by_filter(
    cloud_assembly: Path, stack_template: dict[str, object]
) -> None:
    from pipeline.local.cfn import resolve_stack

    stack = resolve_stack(stack_template, "WebSocketPipeline-dev", cloud_assembly)
    mappings = stack.of_type("AWS::Lambda::EventSourceMapping")
    configs = {m.logical_id: MappingConfig.from_cfn(m.properties, logical_id=m.logical_id)
               for m in mappings}
    specs = load_all()
    assert len(configs) == len(specs)
    for spec in specs:
        (config,) = [c for lid, c in configs.items() if f"Consumer{spec.name}Function" in lid]
        assert "/consumer/" in config.event_source_arn  # enhanced fan-out
        assert config.report_batch_item_failures and config.bisect_batch_on_function_error
        assert config.maximum_retry_attempts == spec.retry_attempts
        assert config.on_failure_destination_arn is not None
        assert config.on_failure_destination_arn.startswith("arn:aws:sqs:")
        for route in spec.routes:
            assert record_matches(config.filters, envelope(route)), (spec.name, route)
        for key in spec.server_route_keys:  # KPL-aggregated server records, via fan-out
            aggregated = kpl_record(key)
            assert record_matches(config.filters, aggregated, fan_out=True), (spec.name, key)
            assert not record_matches(config.filters, aggregated, fan_out=False)
        assert not record_matches(config.filters, envelope("no-such-route"))
