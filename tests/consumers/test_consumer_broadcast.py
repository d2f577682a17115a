"""broadcast: KPL-aggregated SERVER records to the members of a room, or to everyone."""

from __future__ import annotations

import base64
from typing import Any

import boto3
from connections_stub import AtConnections
from consumer_loader import load_handler
from kinesis_events import A, B, envelope, event, load
from runtime_fixtures import put_meta

from pipeline.publish import publish
from pipeline.runtime import HandlerContext, process_batch

broadcast = load_handler("broadcast")


def test_aggregated_broadcasts_reach_room_members_in_order_then_everyone(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    for cid in (A, B, "C"):
        put_meta(ddb, cid)
    ctx.roster.join(A, "lobby")
    ctx.roster.join(B, "lobby")
    evt = load("kinesis_aggregated_broadcast")
    assert process_batch(evt, None, broadcast.record_handler, ctx=ctx) == {
        "batchItemFailures": []}
    expected = [{"action": "broadcast", "room": "lobby", "data": {"n": n}} for n in range(3)]
    everyone = {"action": "broadcast", "room": None, "data": "all"}
    assert atconn.received(A) == [*expected, everyone]
    assert atconn.received(B) == [*expected, everyone]
    assert atconn.received("C") == [everyone]


def test_gone_members_are_pruned_and_do_not_fail_the_record(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    put_meta(ddb, A)
    put_meta(ddb, B)
    ctx.roster.join(A, "lobby")
    ctx.roster.join(B, "lobby")
    atconn.gone.add(B)
    evt = load("kinesis_aggregated_broadcast")
    assert process_batch(evt, None, broadcast.record_handler, ctx=ctx) == {
        "batchItemFailures": []}
    assert atconn.attempts[B] == 1  # pruned at the first 410, never posted to again
    assert list(ctx.roster.all_connections()) == [A]
    assert len(atconn.received(A)) == 4


def test_a_malformed_server_body_is_logged_not_retried(
    atconn: AtConnections, ctx: HandlerContext
) -> None:
    data = envelope("broadcast", "", '{"room": 5, "data": 1}', event_type="SERVER")
    assert process_batch(event(("broadcast#x", data)), None, broadcast.record_handler,
                         ctx=ctx) == {"batchItemFailures": []}
    assert atconn.posts == []


def test_published_messages_reach_the_members_end_to_end(
    atconn: AtConnections, ctx: HandlerContext, ddb: Any
) -> None:
    kinesis = boto3.client("kinesis", region_name="us-east-1")  # moto, like the ddb fixture
    kinesis.create_stream(StreamName="s", ShardCount=1)
    ctx.roster.join(A, "news")
    ctx.roster.join(B, "other")
    publish("news", {"headline": "hi"}, count=3, stream_name="s", client=kinesis)
    shard = kinesis.list_shards(StreamName="s")["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName="s", ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    evt = load("kinesis_echo")
    template = evt["Records"][0]
    evt["Records"] = []
    for r in kinesis.get_records(ShardIterator=it)["Records"]:
        rec = {**template, "kinesis": {**template["kinesis"], "partitionKey": r["PartitionKey"],
                                       "sequenceNumber": r["SequenceNumber"],
                                       "data": base64.b64encode(r["Data"]).decode()}}
        evt["Records"].append(rec)
    assert len(evt["Records"]) == 1  # three messages, one aggregated record
    assert process_batch(evt, None, broadcast.record_handler, ctx=ctx) == {
        "batchItemFailures": []}
    assert atconn.received(A) == [
        {"action": "broadcast", "room": "news", "data": {"headline": "hi"}}] * 3
    assert atconn.received(B) == []
