"""The quota split and the fan-out tier in the synthesized `dev` template."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.infrastructure.config import PipelineConfig
from pipeline.registry import load_all

pytestmark = pytest.mark.synth


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Consumer functions by name (their POWERTOOLS_SERVICE_NAME)."""
    out = {}
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function":
            env = res["Properties"].get("Environment", {}).get("Variables", {})
            if "POWERTOOLS_SERVICE_NAME" in env:
                out[env["POWERTOOLS_SERVICE_NAME"]] = res
    return out


def test_the_quota_is_split_by_weight_and_by_concurrent_invocations(
    stack_template: dict[str, Any],
) -> None:
    config = PipelineConfig()  # dev: 2 shards, connectionsRps 5,000
    specs = {s.name: s for s in load_all()}
    total = sum(s.connections_rps_weight for s in specs.values())
    fns = functions(stack_template)
    summed = 0.0
    for name, spec in specs.items():
        env = fns[name]["Properties"]["Environment"]["Variables"]
        if not spec.connections_rps_weight:
            assert "CONNECTIONS_RPS" not in env
            continue
        per_container = float(env["CONNECTIONS_RPS"])
        lanes = config.shards * spec.parallelization_factor
        summed += per_container * lanes
        assert per_container * lanes == pytest.approx(
            config.connections_rps * spec.connections_rps_weight / total, rel=1e-3)
    assert summed == pytest.approx(config.connections_rps, rel=1e-3)  # never more than asked


def test_the_producer_knows_the_tiers_shape_and_may_write_the_stream(
    stack_template: dict[str, Any],
) -> None:
    env = functions(stack_template)["broadcast"]["Properties"]["Environment"]["Variables"]
    tier = {s.name: s for s in load_all()}["fanout"]
    assert env["FANOUT_PAGE_SIZE"] == "500"
    assert env["FANOUT_SHARDS"] == "2"
    assert env["FANOUT_PARALLELIZATION"] == str(tier.parallelization_factor)
    actions = set()
    for res in stack_template["Resources"].values():
        if res["Type"] == "AWS::IAM::Policy" and "broadcast" in str(res["Properties"]["Roles"]):
            for statement in res["Properties"]["PolicyDocument"]["Statement"]:
                acts = statement["Action"]
                actions.update([acts] if isinstance(acts, str) else acts)
    assert "kinesis:PutRecords" in actions


def test_connections_rps_comes_from_the_context() -> None:
    assert PipelineConfig.from_context({"connectionsRps": "1200"}.get).connections_rps == 1200
    with pytest.raises(Exception, match="connectionsRps"):
        PipelineConfig.from_context({"connectionsRps": "0"}.get)


def test_a_rate_too_low_to_post_a_batch_of_pages_in_time_is_refused() -> None:
    from pipeline.infrastructure import ConfigError
    from pipeline.infrastructure.stack import posting_environment

    specs = load_all()
    tier = next(s for s in specs if s.name == "fanout")
    ok = posting_environment(tier, specs, PipelineConfig(connections_rps=5000, shards=2))
    assert float(ok["CONNECTIONS_RPS"]) > 0
    with pytest.raises(ConfigError, match="raise connectionsRps"):
        # 10 shards x PF 5 share ~36 posts/s: 4 pages of 500 would take ~56 s of a 60 s timeout
        posting_environment(tier, specs, PipelineConfig(connections_rps=500, shards=10))


# --- issue 21 finding 2: budgets from the stream's real shard count ------------------------------

def test_on_demand_budgets_start_from_four_shards_and_follow_the_stream() -> None:
    """An on-demand stream starts with 4 shards and grows: the functions get their whole share
    (``CONNECTIONS_RPS_SHARE``) and ParallelizationFactor to divide by the open shard count
    they read (pipeline/runtime/shardcount.py), and start from 4 shards, not ``shards``."""
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from pipeline.infrastructure.stack import PipelineStack

    app = App(context={"streamMode": "on-demand"})
    config = PipelineConfig.from_context(app.node.try_get_context)
    specs = load_all()
    stack = PipelineStack(app, config.stack_name, config=config, consumers=specs)
    fns = functions(Template.from_stack(stack).to_json())
    readers = sum(s.parallelization_factor for s in specs
                  if s.connections_rps_weight or s.fanout_page_size)
    for spec in specs:
        env = fns[spec.name]["Properties"]["Environment"]["Variables"]
        if spec.connections_rps_weight:
            share = float(env["CONNECTIONS_RPS_SHARE"])
            assert env["PARALLELIZATION_FACTOR"] == str(spec.parallelization_factor)
            assert float(env["CONNECTIONS_RPS"]) * 4 * spec.parallelization_factor == \
                pytest.approx(share, rel=1e-3)
        if spec.connections_rps_weight or spec.fanout_page_size:
            assert env["STREAM_SHARDS"] == "4"
            assert env["SHARD_COUNT_READERS_PER_SHARD"] == str(readers)
    assert fns["broadcast"]["Properties"]["Environment"]["Variables"]["FANOUT_SHARDS"] == "4"


def test_a_function_whose_worst_case_batch_cannot_post_in_time_is_refused() -> None:
    """Issue 22: not only the fan-out tier. chat posts at most batchSize x (1 reply + one
    page) per batch (a larger room goes to the tier); at chat's share that must fit its
    timeout."""
    from dataclasses import replace

    from pipeline.infrastructure import ConfigError
    from pipeline.infrastructure.stack import posting_environment, worst_posts_per_record

    specs = load_all()
    chat = next(s for s in specs if s.name == "chat")
    assert worst_posts_per_record(chat) == 1 + chat.fanout_page_size
    ok = posting_environment(chat, specs, PipelineConfig(connections_rps=5000, shards=2))
    assert float(ok["CONNECTIONS_RPS"]) > 0
    big_pages = [replace(s, fanout_page_size=500) if s.name == "chat" else s for s in specs]
    with pytest.raises(ConfigError, match="chat's worst-case batch"):
        # ~192 posts/s per invocation: 100 records x 501 posts would take ~260 s of 30 s
        posting_environment(big_pages[1], big_pages, PipelineConfig(connections_rps=5000,
                                                                    shards=2))
