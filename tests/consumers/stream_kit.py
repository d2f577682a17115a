"""Read a moto stream back as Lambda Kinesis events, one per ParallelizationFactor lane."""

from __future__ import annotations

import base64
from typing import Any

from runtime_kit.kinesis_events import load

from pipeline.local.esm.batching import lane_of


def shard_records(kinesis: Any, stream: str) -> dict[str, list[dict[str, Any]]]:
    """Every record of every shard, in shard order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        sid = shard["ShardId"]
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=sid,
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records: list[dict[str, Any]] = []
        for _ in range(100):  # bounded: moto returns everything within a few calls
            answer = kinesis.get_records(ShardIterator=it, Limit=10_000)
            records.extend(answer["Records"])
            it = answer.get("NextShardIterator")
            if not answer["Records"] or not it:
                break
        out[sid] = records
    return out


def lambda_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A Lambda event of moto records (shaped like tests/events/kinesis_echo.json)."""
    template = load("kinesis_echo")["Records"][0]
    return {"Records": [
        {**template, "kinesis": {**template["kinesis"], "partitionKey": r["PartitionKey"],
                                 "sequenceNumber": r["SequenceNumber"],
                                 "data": base64.b64encode(r["Data"]).decode()}}
        for r in records]}


def lane_events(kinesis: Any, stream: str, lanes: int) -> list[dict[str, Any]]:
    """One event per (shard, lane), each lane's records in order; the lanes in *reverse*, so a
    test sees what an unlucky interleaving of concurrent lanes would deliver."""
    events = []
    for records in shard_records(kinesis, stream).values():
        by_lane: dict[int, list[dict[str, Any]]] = {}
        for r in records:
            by_lane.setdefault(lane_of(r["PartitionKey"], lanes), []).append(r)
        events.extend(lambda_event(by_lane[lane]) for lane in sorted(by_lane))
    return events[::-1]


_pumped: dict[int, set[str]] = {}


def pump(ctx: Any) -> int:
    """Run the ``presence`` and ``fanout`` consumers over what handlers put on ``ctx``'s stream
    (the ctx fixture's moto stream), until nothing new is there; the records handled."""
    import json

    from consumer_loader import load_handler

    from pipeline.runtime import process_batch

    presence, fanout = load_handler("presence"), load_handler("fanout")
    writer = ctx.page_writer_client
    seen = _pumped.setdefault(id(ctx), set())
    handled = 0
    while True:
        new = [r for records in shard_records(writer._kinesis, writer.stream_name).values()
               for r in records if r["SequenceNumber"] not in seen]
        if not new:
            return handled
        for route in ("presence", "fanout"):
            mine = [r for r in new if json.loads(r["Data"])["routeKey"] == route]
            if route == "presence" and mine:
                presence.handle(lambda_event(mine), None, ctx)
            elif mine:
                process_batch(lambda_event(mine), None, fanout.record_handler, ctx=ctx)
        seen.update(r["SequenceNumber"] for r in new)
        handled += len(new)
