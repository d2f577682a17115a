"""The checks that read or write the stage's stream and roster (need AWS access, else skip).

``ack`` runs without AWS access too: it then checks only that the ack frame arrives.

Item shapes: docs/contracts.md "Roster table"; the envelope: docs/contracts.md "The envelope".
boto3 calls run in a thread so the WebSocket connections keep being served meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from typing import Any

from pipeline.publish import PublishError, publish
from pipeline.verify.checks import Session, is_action
from pipeline.verify.report import CheckFailed, CheckSkipped
from pipeline.verify.target import AwsAccess

POLL_S = 0.2  # GetRecords allows 5 calls/s per shard; the roster is read as often
GHOST_TTL_S = 900  # the ghost's items expire on their own if a run is interrupted


async def _call(fn: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, **kwargs)


def _envelope(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:  # a KPL-aggregated server record, or not ours
        return {}
    return value if isinstance(value, dict) else {}


async def stored_record(s: Session, aws: AwsAccess, shard: str, seq: str) -> dict[str, Any]:
    """The envelope stored at ``shard``/``seq`` (GetShardIterator AT_SEQUENCE_NUMBER)."""
    kinesis = aws.client("kinesis")
    iterator = (await _call(kinesis.get_shard_iterator, StreamName=aws.stream, ShardId=shard,
                            ShardIteratorType="AT_SEQUENCE_NUMBER",
                            StartingSequenceNumber=seq))["ShardIterator"]
    while s.remaining() > 0:  # GetRecords may answer empty before it reaches the record
        answer = await _call(kinesis.get_records, ShardIterator=iterator, Limit=1)
        for record in answer.get("Records", []):
            if record["SequenceNumber"] != seq:
                raise CheckFailed(f"the record at {shard}/{seq} has sequence number "
                                  f"{record['SequenceNumber']}")
            return _envelope(record["Data"])
        iterator = answer.get("NextShardIterator")
        if not iterator:
            break
        await asyncio.sleep(POLL_S)
    raise CheckFailed(f"no record at {shard}/{seq}")


async def check_ack(s: Session) -> str:
    a = s.need_a()
    if s.ack_start is None:
        raise CheckSkipped("no chat send was made: the chat check did not run")
    _, ack = await a.expect(lambda f: isinstance(f, dict) and f.get("action") in ("ack", "nack")
                            and f.get("route") == "send", "ack for the chat send", s.deadline,
                            s.ack_start)
    if ack["action"] == "nack":
        raise CheckFailed(f"nack for a stored send: {ack!r}")
    shard, seq = ack.get("shardId"), ack.get("sequenceNumber")
    if not isinstance(shard, str) or not isinstance(seq, str) or not ack.get("requestId"):
        raise CheckFailed(f"the ack lacks requestId/shardId/sequenceNumber: {ack!r}")
    seen = f"ack (shard {shard}, sequence number {seq})"
    if s.target.aws is None:
        return f"{seen}; reading the stored record skipped: {s.target.no_aws}"
    envelope = await stored_record(s, s.target.aws, shard, seq)
    expected = {"requestId": ack["requestId"], "connectionId": s.a_id, "routeKey": "send"}
    got = {k: envelope.get(k) for k in expected}
    if got != expected:
        raise CheckFailed(f"{seen} points at a record with {got}, expected {expected}")
    return f"{seen} points at the stored record (its requestId and connectionId match)"


def _ghost_id() -> str:
    # Shaped like API Gateway's ids (16 base64 characters, e.g. "L0SM9cOFvHcCIhw="), so
    # @connections answers 410 Gone for it, not 400 for a malformed id.
    raw = base64.b64encode(secrets.token_bytes(11)).decode()
    return raw.replace("+", "A").replace("/", "B")


def _membership(cid: str, room: str) -> list[dict[str, Any]]:
    now = int(time.time())
    attrs = {"room": {"S": room}, "connectionId": {"S": cid}, "joinedAt": {"N": str(now * 1000)},
             "expiresAt": {"N": str(now + GHOST_TTL_S)}}
    return [{"pk": {"S": f"CONN#{cid}"}, "sk": {"S": f"ROOM#{room}"}, **attrs},
            {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": f"CONN#{cid}"}, **attrs}]


async def check_prune_410(s: Session) -> str:
    aws = s.need_aws()
    a = s.need_a()
    ddb = aws.client("dynamodb")
    room, ghost = f"{s.room}-prune", _ghost_id()
    mark = len(a.frames)
    await a.send({"action": "join", "room": room})
    await a.expect(lambda f: is_action(f, "joined", room=room), f"'joined' for {room}",
                   s.deadline, mark)
    items = _membership(ghost, room)
    for item in items:
        await _call(ddb.put_item, TableName=aws.table, Item=item)
    keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items]
    started = time.monotonic()
    await a.send({"action": "send", "room": room, "text": f"verify {s.nonce} to a ghost"})
    while s.remaining() > 0:
        left = [k for k in keys if (await _call(ddb.get_item, TableName=aws.table, Key=k,
                                                ConsistentRead=True)).get("Item")]
        if not left:
            ms = (time.monotonic() - started) * 1000
            return (f"the vanished connection {ghost} (a member of {room}) was pruned "
                    f"{ms:.0f} ms after a send to the room")
        await asyncio.sleep(POLL_S)
    for key in keys:  # leave no ghost behind on a real stage
        await _call(ddb.delete_item, TableName=aws.table, Key=key)
    raise CheckFailed(f"the vanished connection {ghost} was still a member of {room} at the "
                      f"deadline; the sender got {a.describe(mark)}")


async def check_publish(s: Session) -> str:
    aws = s.need_aws()
    a = s.need_a()
    room = s.room
    if not s.in_room:
        room = f"{s.room}-publish"
        mark = len(a.frames)
        await a.send({"action": "join", "room": room})
        await a.expect(lambda f: is_action(f, "joined", room=room), f"'joined' for {room}",
                       s.deadline, mark)
    data = {"verify": s.nonce, "published": True}
    mark = len(a.frames)
    try:
        result = await _call(publish, room=room, data=data, stream_name=aws.stream,
                             client=aws.client("kinesis"))
    except PublishError as exc:
        raise CheckFailed(f"publish failed: {exc.code}: {exc}") from exc
    await a.expect(lambda f: is_action(f, "broadcast", room=room, data=data),
                   "broadcast at a member of the room", s.deadline, mark)
    return (f"a KPL-aggregated publish ({result.records} record, {result.bytes} bytes) reached "
            f"a member of {room}")


async def check_connect_roster(s: Session) -> str:
    aws = s.need_aws()
    if not s.a_id:
        raise CheckSkipped("the connection's id is unknown: the chat check did not pass")
    answer = await _call(aws.client("dynamodb").get_item, TableName=aws.table,
                         Key={"pk": {"S": f"CONN#{s.a_id}"}, "sk": {"S": "META"}},
                         ConsistentRead=True)
    item = answer.get("Item")
    if not item:
        raise CheckFailed(f"no CONN#{s.a_id}/META item in {aws.table}")
    if item.get("connectionId", {}).get("S") != s.a_id:
        raise CheckFailed(f"the META item names connection {item.get('connectionId')}")
    return f"CONN#{s.a_id}/META is in the roster (attributes: {', '.join(sorted(item))})"


async def check_disconnect_status(s: Session) -> str:
    aws = s.need_aws()
    if s.b is None or not s.b_id:
        raise CheckSkipped("no second connection with a known id: the chat check did not pass")
    kinesis = aws.client("kinesis")
    shards = (await _call(kinesis.list_shards, StreamName=aws.stream))["Shards"]
    iterators = {}
    for shard in shards:
        iterators[shard["ShardId"]] = (await _call(
            kinesis.get_shard_iterator, StreamName=aws.stream, ShardId=shard["ShardId"],
            ShardIteratorType="LATEST"))["ShardIterator"]
    b, s.b = s.b, None
    await b.close(4000, "verify")
    while s.remaining() > 0:
        for shard_id, iterator in list(iterators.items()):
            answer = await _call(kinesis.get_records, ShardIterator=iterator, Limit=1000)
            iterators[shard_id] = answer["NextShardIterator"]
            for record in answer.get("Records", []):
                envelope = _envelope(record["Data"])
                if envelope.get("eventType") == "DISCONNECT" and \
                        envelope.get("connectionId") == s.b_id:
                    if "disconnectStatusCode" in envelope:
                        return (f"closed with 4000: the $disconnect envelope has "
                                f"disconnectStatusCode {envelope['disconnectStatusCode']!r}")
                    return ("closed with 4000: the $disconnect envelope has no "
                            "disconnectStatusCode field")
        await asyncio.sleep(POLL_S)
    raise CheckFailed(f"no $disconnect record for {s.b_id} on the stream before the deadline "
                      "($disconnect is best effort on AWS; it may also be misrouted)")
