"""The @connections budget after the twin's on-demand stream grows (issue 21 finding 2).

Containers are simulated (one per open shard x ParallelizationFactor, each with its own cache
and token bucket on a shared fake clock) around the runtime's real pieces: the open shard count
read with DescribeStreamSummary from the twin's Kinesis over HTTP (:mod:`pipeline.runtime.
shardcount`, the runtime's own signed call) and the rate it gives (:func:`pipeline.runtime.ratelimit.share_rate`). Posts are
counted with the bucket's own schedule over a window, so no real time passes.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from pipeline.local.services import AwsServices
from pipeline.runtime.aws_json import JsonApi
from pipeline.runtime.ratelimit import TokenBucket, share_rate
from pipeline.runtime.shardcount import OpenShardCount, describer, kinesis_api, refresh_interval

SHARE = 5000.0  # the function's connectionsRps share
FACTOR = 2  # its ParallelizationFactor
ENV = {"CONNECTIONS_RPS_SHARE": str(SHARE), "PARALLELIZATION_FACTOR": str(FACTOR)}
WINDOW_S = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Container:
    """One concurrent invocation's container: its cached count and its bucket."""

    def __init__(self, api: JsonApi, stream: str, clock: Clock) -> None:
        self.count = OpenShardCount(describer(stream, api), initial=4,
                                    readers_per_shard=FACTOR, clock=clock, jitter=lambda: 0.5)
        self.bucket = TokenBucket(SHARE / (4 * FACTOR), clock=clock, sleep=lambda s: None)
        self.clock = clock

    def begin(self) -> None:
        """HandlerContext.begin(): the rate follows the (cached) open shard count."""
        rate = share_rate(self.count.current(), ENV)
        assert rate is not None
        self.bucket.set_rate(rate)

    def posts_in_window(self) -> int:
        """Bulk posts this container can make in the next WINDOW_S (its schedule, no sleep)."""
        deadline = self.clock.now + WINDOW_S
        posts = 0
        while self.bucket.acquire(deadline):
            posts += 1
        return posts


@pytest.fixture
def twin_kinesis() -> Any:
    services = AwsServices()
    services.start(0)
    services.kinesis.create_stream("events", mode="ON_DEMAND")
    client = boto3.client("kinesis", endpoint_url=services.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    try:
        yield services, client
    finally:
        services.stop()


def test_total_post_rate_stays_within_the_budget_after_the_stream_grows(
    twin_kinesis: Any,
) -> None:
    services, client = twin_kinesis
    # each container's runtime call, signed with the keys Lambda puts in its environment
    api = kinesis_api({"AWS_ENDPOINT_URL": services.url, "AWS_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    clock = Clock()
    before = [Container(api, "events", clock) for _ in range(4 * FACTOR)]
    for c in before:
        c.begin()
    assert sum(c.bucket.rate for c in before) == pytest.approx(SHARE)

    stream = services.kinesis.streams["events"]
    services.kinesis.grow(stream, 8)  # what --grow-shards 8 does
    assert client.describe_stream_summary(StreamName="events")[
        "StreamDescriptionSummary"]["OpenShardCount"] == 8
    # the stack's static rate (the shard count it deployed) would now post twice the budget
    assert 8 * FACTOR * (SHARE / (4 * FACTOR)) == 2 * SHARE

    # Lambda now runs 8 x PF invocations: warm containers (cached 4 until their next
    # reading) and cold ones (they read 8 at once).
    clock.now += 1.0
    after = before + [Container(api, "events", clock) for _ in range(4 * FACTOR)]
    for c in after:
        c.begin()
    transient = sum(c.bucket.rate for c in after)
    assert transient == pytest.approx(1.5 * SHARE)  # at most one refresh interval (docs)

    clock.now += refresh_interval(8, FACTOR) * 1.1  # past every container's next reading
    for c in after:
        c.begin()
    assert all(c.count.current() == 8 for c in after)
    assert sum(c.bucket.rate for c in after) == pytest.approx(SHARE)
    posts = sum(c.posts_in_window() for c in after)
    bursts = sum(c.bucket.burst for c in after)
    assert posts <= SHARE * WINDOW_S + bursts
    assert posts >= SHARE * WINDOW_S * 0.99  # and the budget is used, not wasted
    # one DescribeStreamSummary per container per interval: 2 each so far
    assert {c.count.readings for c in before} == {2}


def test_the_twin_refuses_update_shard_count_on_an_on_demand_stream(twin_kinesis: Any) -> None:
    _, client = twin_kinesis
    with pytest.raises(client.exceptions.ValidationException):
        client.update_shard_count(StreamName="events", TargetShardCount=8,
                                  ScalingType="UNIFORM_SCALING")


def test_update_shard_count_grows_a_provisioned_stream_uniformly(twin_kinesis: Any) -> None:
    services, client = twin_kinesis
    services.kinesis.create_stream("prov", 2)
    answer = client.update_shard_count(StreamName="prov", TargetShardCount=4,
                                       ScalingType="UNIFORM_SCALING")
    assert (answer["CurrentShardCount"], answer["TargetShardCount"]) == (2, 4)
    shards = client.list_shards(StreamName="prov", ShardFilter={"Type": "AT_LATEST"})["Shards"]
    widths = {int(s["HashKeyRange"]["EndingHashKey"]) - int(s["HashKeyRange"]["StartingHashKey"])
              for s in shards}
    assert len(shards) == 4 and max(widths) - min(widths) <= 1
