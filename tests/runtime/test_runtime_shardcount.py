"""The cached open shard count and the container's rate that follows it (issue 21 finding 2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stacks import aws_services

from pipeline.local.services import AwsServices
from pipeline.runtime import shardcount
from pipeline.runtime.connections import ConnectionsClient
from pipeline.runtime.context import HandlerContext
from pipeline.runtime.exceptions import AwsCallError
from pipeline.runtime.ratelimit import TokenBucket, share_rate
from pipeline.runtime.shardcount import (
    DESCRIBE_BUDGET_TPS,
    REFRESH_S,
    OpenShardCount,
    describer,
    kinesis_api,
    refresh_interval,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Describe:
    def __init__(self, value: int) -> None:
        self.value: int | Exception = value
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def test_read_once_then_cached_for_the_interval() -> None:
    clock, describe = Clock(), Describe(4)
    count = OpenShardCount(describe, initial=2, clock=clock, jitter=lambda: 0.5)
    assert count.current() == 4
    describe.value = 8
    clock.now += REFRESH_S - 1
    assert [count.current() for _ in range(1000)] == [4] * 1000
    assert describe.calls == 1  # never per record
    clock.now += 1
    assert count.current() == 8 and describe.calls == 2


def test_a_decrease_is_adopted_only_when_read_twice() -> None:
    clock, describe = Clock(), Describe(8)
    count = OpenShardCount(describe, initial=8, clock=clock, jitter=lambda: 0.5)
    count.current()
    describe.value = 4
    clock.now += REFRESH_S
    assert count.current() == 8  # parents may still be draining
    clock.now += REFRESH_S
    assert count.current() == 4


def test_a_failed_reading_keeps_the_last_value_and_retries_sooner() -> None:
    clock, describe = Clock(), Describe(4)
    count = OpenShardCount(describe, initial=2, clock=clock, jitter=lambda: 0.5)
    count.current()
    describe.value = RuntimeError("LimitExceededException")
    clock.now += REFRESH_S
    assert count.current() == 4
    describe.value = 6
    clock.now += shardcount.RETRY_S
    assert count.current() == 6


@pytest.mark.parametrize(("containers", "interval", "tps"), [
    (10, 60.0, 10 / 60), (1_000, 500.0, 2.0), (100_000, 50_000.0, 2.0)])
def test_the_account_wide_describe_rate_stays_under_the_limit(
    containers: int, interval: float, tps: float
) -> None:
    """DescribeStreamSummary: 20 per second per account (API reference)."""
    assert refresh_interval(containers, 1) == interval
    assert containers / refresh_interval(containers, 1) == pytest.approx(tps)
    assert tps <= DESCRIBE_BUDGET_TPS < 20


def test_share_rate_divides_by_open_shards_and_factor() -> None:
    env = {"CONNECTIONS_RPS_SHARE": "5000", "PARALLELIZATION_FACTOR": "5"}
    assert share_rate(4, env) == 250.0
    assert share_rate(8, env) == 125.0
    assert share_rate(8, {}) is None


def test_begin_sets_the_containers_rate_and_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTIONS_RPS_SHARE", "5000")
    monkeypatch.setenv("PARALLELIZATION_FACTOR", "5")
    describe = Describe(8)
    count = OpenShardCount(describe, initial=4)
    monkeypatch.setattr("pipeline.runtime.context.open_shard_count", lambda: count)
    bucket = TokenBucket(250.0)
    ctx = HandlerContext(connections_client=ConnectionsClient("http://127.0.0.1:1/dev",
                                                              limiter=bucket))
    ctx.begin()
    assert ctx.open_shards == 8
    assert bucket.rate == 125.0


# --- DescribeStreamSummary over HTTP: the twin's Kinesis ----------------------------------------

@pytest.fixture(scope="module")
def twin_aws() -> Iterator[AwsServices]:
    with aws_services() as services:
        services.kinesis.create_stream("counted", 3)
        yield services


def _lambda_env(aws_url: str) -> dict[str, str]:
    """What Lambda (and the twin's workers) set: the keys, the Region; the twin's endpoint."""
    return {"AWS_ENDPOINT_URL": aws_url, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_SESSION_TOKEN": "token"}


def test_describe_stream_summary_reads_the_twin_s_open_shard_count(twin_aws: AwsServices
                                                                   ) -> None:
    api = kinesis_api(_lambda_env(twin_aws.url))
    assert api.endpoint_url == twin_aws.url
    describe = describer("counted", api)
    assert describe() == 3
    twin_aws.kinesis.create_stream("growing", mode="ON_DEMAND")
    grown = describer("growing", api)
    assert grown() == 4
    twin_aws.kinesis.grow(twin_aws.kinesis.stream("growing"), 8)
    assert grown() == 8


def test_an_error_answer_raises_and_the_count_keeps_its_value(twin_aws: AwsServices) -> None:
    api = kinesis_api(_lambda_env(twin_aws.url))
    with pytest.raises(AwsCallError) as raised:
        describer("no-such-stream", api)()
    assert (raised.value.code, raised.value.status) == ("ResourceNotFoundException", 400)

    twin_aws.kinesis.create_stream("doomed", 5)
    clock = Clock()
    count = OpenShardCount(describer("doomed", api), initial=2, clock=clock,
                           jitter=lambda: 0.5)
    assert count.current() == 5
    twin_aws.kinesis.delete_stream("doomed")
    clock.now += REFRESH_S
    assert count.current() == 5 and count.readings == 2  # read, refused, kept
