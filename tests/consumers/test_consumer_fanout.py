"""The fan-out tier: pages cover every member once, spread over shards and lanes, and keep
each member's order of a room's broadcasts across pages (broadcast -> stream -> fanout)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from consumer_loader import load_handler
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import envelope, event
from stream_kit import lane_events, shard_records

from pipeline import DEFAULT_REGION
from pipeline.local.esm.batching import lane_of
from pipeline.runtime import HandlerContext, process_batch
from pipeline.runtime.fanout import (
    HASH_SPACE,
    FanoutShape,
    PageWriter,
    _md5,
    bucket_of,
    plan_pages,
)

broadcast = load_handler("broadcast")
fanout = load_handler("fanout")
SHAPE = FanoutShape(page_size=7, shards=2, parallelization=3)
MEMBERS = [f"M{i:04d}aaaaaaaaa=" for i in range(150)]


def test_pages_cover_every_member_exactly_once() -> None:
    pages = plan_pages("room:big", MEMBERS + MEMBERS[:10], SHAPE)  # duplicates count once
    covered = Counter(cid for page in pages for cid in page.recipients)
    assert set(covered) == set(MEMBERS) and set(covered.values()) == {1}
    assert all(1 <= len(p.recipients) <= SHAPE.page_size for p in pages)
    for page in pages:
        assert {bucket_of(cid, SHAPE.lanes) for cid in page.recipients} == {page.bucket}


def test_each_bucket_has_one_key_on_its_own_shard_and_lane() -> None:
    pages = plan_pages("room:big", MEMBERS, SHAPE)
    keys = {p.bucket: p.partition_key for p in pages}
    assert len(set(keys.values())) == len(keys) == SHAPE.lanes  # 150 members: every bucket
    for bucket, key in keys.items():
        shard = _md5(key) * SHAPE.shards // HASH_SPACE
        assert (shard, lane_of(key, SHAPE.parallelization)) == divmod(bucket, 3)
    assert plan_pages("room:big", MEMBERS, SHAPE) == pages  # deterministic across containers


@pytest.fixture
def stream(ddb: Any) -> Iterator[Any]:
    kinesis = boto3.client("kinesis", region_name=DEFAULT_REGION)  # moto, like the ddb fixture
    kinesis.create_stream(StreamName="s", ShardCount=SHAPE.shards)
    yield kinesis


def tier(ctx: HandlerContext, kinesis: Any) -> HandlerContext:
    ctx.page_writer_client = PageWriter("s", client=kinesis)
    ctx.fanout_shape = SHAPE
    return ctx


def server(room: str, n: int) -> tuple[str, bytes]:
    body = f'{{"room": "{room}", "data": {{"n": {n}}}}}'
    return f"broadcast#{room}", envelope("broadcast", "", body, event_type="SERVER")


def test_per_member_order_holds_across_pages_while_the_room_grows(
    atconn: AtConnections, ctx: HandlerContext, stream: Any
) -> None:
    ctx = tier(ctx, stream)
    for cid in MEMBERS[:60]:
        ctx.roster.join(cid, "big")
    assert process_batch(event(server("big", 0)), None, broadcast.record_handler,
                         ctx=ctx) == {"batchItemFailures": []}
    for cid in MEMBERS[60:]:  # the room grows: more pages, yet every member's bucket is fixed
        ctx.roster.join(cid, "big")
    assert process_batch(event(server("big", 1), server("big", 2)), None,
                         broadcast.record_handler, ctx=ctx) == {"batchItemFailures": []}
    records = [r for rs in shard_records(stream, "s").values() for r in rs]
    assert len({r["PartitionKey"] for r in records}) == SHAPE.lanes
    for evt in lane_events(stream, "s", SHAPE.parallelization):
        assert process_batch(evt, None, fanout.record_handler, ctx=ctx) == {
            "batchItemFailures": []}
    for cid in MEMBERS[:60]:
        assert [m["data"]["n"] for m in atconn.received(cid)] == [0, 1, 2]
    for cid in MEMBERS[60:]:
        assert [m["data"]["n"] for m in atconn.received(cid)] == [1, 2]
    assert atconn.received(MEMBERS[0])[0] == {"action": "broadcast", "room": "big",
                                              "data": {"n": 0}}


def test_gone_recipients_are_pruned_and_do_not_fail_the_page(
    atconn: AtConnections, ctx: HandlerContext, stream: Any
) -> None:
    ctx = tier(ctx, stream)
    for cid in MEMBERS[:20]:
        ctx.roster.join(cid, "r")
    atconn.gone.add(MEMBERS[3])
    process_batch(event(server("r", 0)), None, broadcast.record_handler, ctx=ctx)
    for evt in lane_events(stream, "s", SHAPE.parallelization):
        assert process_batch(evt, None, fanout.record_handler, ctx=ctx) == {
            "batchItemFailures": []}
    assert MEMBERS[3] not in set(ctx.roster.members("r"))
    broadcasts = [b for _, b in atconn.posts if b"broadcast" in b]
    assert len(broadcasts) == 19 and MEMBERS[3] not in atconn.delivered_to()


def test_a_malformed_page_is_logged_not_retried(atconn: AtConnections,
                                                ctx: HandlerContext) -> None:
    data = envelope("fanout", "", '{"recipients": "x", "message": 1}', event_type="SERVER")
    assert process_batch(event(("fanout#x", data)), None, fanout.record_handler,
                         ctx=ctx) == {"batchItemFailures": []}
    assert atconn.posts == []


def test_pages_are_written_while_the_room_is_read_and_still_cover_each_member_once(
    ctx: HandlerContext, stream: Any
) -> None:
    ctx = tier(ctx, stream)
    ctx.begin()
    written: list[int] = []
    original = ctx.page_writer_client.write  # type: ignore[union-attr]

    def spy(pages: Any, message: Any, *, request_time_ms: int) -> int:
        written.append(len(pages))
        return original(pages, message, request_time_ms=request_time_ms)

    ctx.page_writer_client.write = spy  # type: ignore[union-attr,method-assign]
    members = MEMBERS + MEMBERS[:50]  # duplicates across chunks are sent to once
    pages = ctx.fanout_pages("room:x", iter(members), {"action": "broadcast"})
    assert len(written) == 4  # 150 members, chunks of page_size x lanes = 42: four writes
    covered = Counter(cid for page in pages for cid in page.recipients)
    assert set(covered) == set(MEMBERS) and set(covered.values()) == {1}
    for cid in MEMBERS:  # a member's page key is the same whichever chunk it came in
        keys = {p.partition_key for p in pages if cid in p.recipients}
        assert len(keys) == 1
