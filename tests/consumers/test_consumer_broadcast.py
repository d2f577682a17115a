"""broadcast: KPL-aggregated SERVER records to the members of a room, or to everyone, through
the fan-out tier (pages on the stream, posted by the ``fanout`` consumer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from consumer_loader import load_handler
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, B, envelope, event, load
from runtime_kit.roster_table import put_meta
from stream_kit import lambda_event, lane_events, shard_records

from pipeline import DEFAULT_REGION
from pipeline.publish import publish
from pipeline.runtime import HandlerContext, process_batch
from pipeline.runtime.fanout import FanoutShape, PageWriter

broadcast = load_handler("broadcast")
fanout = load_handler("fanout")


@pytest.fixture
def kinesis(ddb: Any) -> Iterator[Any]:
    client = boto3.client("kinesis", region_name=DEFAULT_REGION)  # moto, like the ddb fixture
    client.create_stream(StreamName="pages", ShardCount=1)
    yield client


@pytest.fixture
def tier(ctx: HandlerContext, kinesis: Any) -> HandlerContext:
    ctx.page_writer_client = PageWriter("pages", client=kinesis)
    ctx.fanout_shape = FanoutShape(page_size=500, shards=1, parallelization=2)
    return ctx


def post_pages(ctx: HandlerContext, kinesis: Any) -> None:
    for evt in lane_events(kinesis, "pages", 2):
        assert process_batch(evt, None, fanout.record_handler, ctx=ctx) == {
            "batchItemFailures": []}


def test_aggregated_broadcasts_reach_room_members_in_order_then_everyone(
    atconn: AtConnections, tier: HandlerContext, ddb: Any, kinesis: Any
) -> None:
    for cid in (A, B, "C"):
        put_meta(ddb, cid)
    tier.roster.join(A, "lobby")
    tier.roster.join(B, "lobby")
    evt = load("kinesis_aggregated_broadcast")
    assert process_batch(evt, None, broadcast.record_handler, ctx=tier) == {
        "batchItemFailures": []}
    assert atconn.posts == []  # the broadcast consumer only writes pages
    post_pages(tier, kinesis)
    expected = [{"action": "broadcast", "room": "lobby", "data": {"n": n}} for n in range(3)]
    everyone = {"action": "broadcast", "room": None, "data": "all"}
    assert atconn.received(A) == [*expected, everyone]
    assert atconn.received(B) == [*expected, everyone]
    assert atconn.received("C") == [everyone]


def test_a_malformed_server_body_is_logged_not_retried(
    atconn: AtConnections, tier: HandlerContext, kinesis: Any
) -> None:
    data = envelope("broadcast", "", '{"room": 5, "data": 1}', event_type="SERVER")
    assert process_batch(event(("broadcast#x", data)), None, broadcast.record_handler,
                         ctx=tier) == {"batchItemFailures": []}
    assert shard_records(kinesis, "pages") == {"shardId-000000000000": []}


def test_published_messages_reach_the_members_end_to_end(
    atconn: AtConnections, tier: HandlerContext, kinesis: Any
) -> None:
    kinesis.create_stream(StreamName="s", ShardCount=1)
    tier.roster.join(A, "news")
    tier.roster.join(B, "other")
    publish("news", {"headline": "hi"}, count=3, stream_name="s", client=kinesis)
    (records,) = shard_records(kinesis, "s").values()
    assert len(records) == 1  # three messages, one aggregated record
    assert process_batch(lambda_event(records), None, broadcast.record_handler, ctx=tier) == {
        "batchItemFailures": []}
    post_pages(tier, kinesis)
    assert atconn.received(A) == [
        {"action": "broadcast", "room": "news", "data": {"headline": "hi"}}] * 3
    assert atconn.received(B) == []
