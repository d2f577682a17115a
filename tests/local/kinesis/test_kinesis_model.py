"""The twin's Kinesis model with no I/O: hash ranges, sequence numbers, iterators, limits,
consumers, and the AWS error codes and messages of each."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from clocks import Clock

from pipeline.local.kinesis import KinesisBackend, ShardWatch
from pipeline.local.kinesis.exceptions import (
    ExpiredIteratorError,
    InvalidArgumentError,
    KinesisError,
    LimitExceededError,
    ResourceInUseError,
    ResourceNotFoundError,
    ThroughputExceededError,
    ValidationError,
)
from pipeline.local.kinesis.shards import MAX_HASH_KEY, ShardLimiter, hash_key_of

ACCOUNT = "123456789012"


@pytest.fixture
def backend(clock: Clock) -> KinesisBackend:
    return KinesisBackend(clock=clock)


def _error(exc: pytest.ExceptionInfo[KinesisError]) -> tuple[str, int, str]:
    return exc.value.code, exc.value.status, exc.value.message


def test_shards_tile_the_key_space_as_aws_splits_it(backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 3)
    ranges = [(s.starting_hash, s.ending_hash) for s in stream.open_shards]
    # AWS: shard i starts at i * floor(2^128 / n); the last ends at 2^128 - 1
    assert ranges[0] == (0, 113427455640312821154458202477256070484)
    assert ranges[1][0] == 113427455640312821154458202477256070485
    assert ranges[-1][1] == MAX_HASH_KEY
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))


def test_an_explicit_hash_key_equal_to_ending_hash_key_maps_to_that_shard(
        backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 2)
    for shard in stream.open_shards:
        for key in (shard.starting_hash, shard.ending_hash):
            _, got = backend.put_record(stream, "k", b"x", str(key))
            assert got is shard
    _, got = backend.put_record(stream, "pk", b"x")
    assert got.covers(hash_key_of("pk"))


@pytest.mark.parametrize("key", ["-1", str(2**128), "abc"])
def test_an_explicit_hash_key_out_of_range_is_invalid(backend: KinesisBackend, key: str) -> None:
    stream = backend.create_stream("s", 1)
    with pytest.raises(InvalidArgumentError) as exc:
        backend.put_record(stream, "k", b"x", key)
    assert _error(exc) == ("InvalidArgumentException", 400,
                           "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: "
                           f"[0, 2^128-1]. Specified value was {key}")


def test_sequence_numbers_are_56_digits_strictly_increasing_per_shard(
        backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 2)
    seqs = [backend.put_record(stream, "same", b"x")[0].sequence_number for _ in range(5)]
    assert all(len(s) == 56 and s.startswith("49") for s in seqs)
    numbers = [int(s) for s in seqs]
    assert all(b - a > 1 for a, b in itertools.pairwise(numbers))  # increasing, not dense


def test_unknown_stream_and_shard(backend: KinesisBackend) -> None:
    with pytest.raises(ResourceNotFoundError) as exc:
        backend.stream("nope")
    assert _error(exc) == ("ResourceNotFoundException", 400,
                           f"Stream nope under account {ACCOUNT} not found.")
    stream = backend.create_stream("s", 1)
    with pytest.raises(ResourceNotFoundError) as exc:
        backend.get_shard_iterator(stream, "shardId-000000000009", "LATEST")
    assert _error(exc)[2] == (f"Shard shardId-000000000009 in stream s under account {ACCOUNT} "
                              "does not exist")
    with pytest.raises(ResourceInUseError) as exc2:
        backend.create_stream("s", 1)
    assert _error(exc2) == ("ResourceInUseException", 400,
                            f"Stream s under account {ACCOUNT} already exists.")


def test_on_demand_streams_start_with_4_shards(backend: KinesisBackend) -> None:
    assert len(backend.create_stream("od", mode="ON_DEMAND").open_shards) == 4
    unsaid = backend.create_stream("no-count")  # no mode, no ShardCount: on-demand, as recorded
    assert (unsaid.mode, len(unsaid.open_shards)) == ("ON_DEMAND", 4)
    with pytest.raises(ValidationError):
        backend.create_stream("prov", mode="PROVISIONED")  # a provisioned stream needs a count


def _iterate(backend: KinesisBackend, stream: Any, kind: str, **kw: Any) -> list[str]:
    token = backend.get_shard_iterator(stream, "shardId-000000000000", kind, **kw)
    return [r.sequence_number for r in backend.get_records(token)["Records"]]


def test_iterator_types(backend: KinesisBackend, clock: Clock) -> None:
    stream = backend.create_stream("s", 1)
    seqs = []
    for i in range(4):
        clock.now += 1
        seqs.append(backend.put_record(stream, "k", bytes([i]))[0].sequence_number)
    assert _iterate(backend, stream, "TRIM_HORIZON") == seqs
    assert _iterate(backend, stream, "LATEST") == []
    assert _iterate(backend, stream, "AT_SEQUENCE_NUMBER", starting_sequence_number=seqs[1]) \
        == seqs[1:]
    assert _iterate(backend, stream, "AFTER_SEQUENCE_NUMBER",
                    starting_sequence_number=seqs[1]) == seqs[2:]
    assert _iterate(backend, stream, "AT_TIMESTAMP", timestamp=clock.now - 1.5) == seqs[2:]
    assert _iterate(backend, stream, "AT_TIMESTAMP", timestamp=clock.now + 10) == []
    with pytest.raises(ValidationError) as exc:
        _iterate(backend, stream, "OLDEST")
    assert exc.value.message == (
        "1 validation error detected: Value 'OLDEST' at 'shardIteratorType' failed to satisfy "
        "constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, "
        "AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]")


def test_a_sequence_number_of_another_shard_is_refused(backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 2)
    seq = backend.put_record(stream, "k", b"x", str(MAX_HASH_KEY))[0].sequence_number
    with pytest.raises(InvalidArgumentError) as exc:
        backend.get_shard_iterator(stream, "shardId-000000000000", "AT_SEQUENCE_NUMBER", seq)
    assert exc.value.message == (
        "Invalid StartingSequenceNumber. It encodes shardId-000000000001, while it was used in "
        "a call to a shard with shardId-000000000000")


def test_get_records_returns_a_new_iterator_each_call_even_on_an_empty_shard(
        backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 1)
    token = backend.get_shard_iterator(stream, "shardId-000000000000", "TRIM_HORIZON")
    seen = {token}
    for _ in range(3):
        out = backend.get_records(token)
        assert out["Records"] == [] and out["MillisBehindLatest"] == 0
        token = out["NextShardIterator"]
        assert token not in seen
        seen.add(token)
    backend.put_record(stream, "k", b"new")
    assert [r.data for r in backend.get_records(token)["Records"]] == [b"new"]


def test_an_iterator_expires_after_5_minutes(backend: KinesisBackend, clock: Clock) -> None:
    stream = backend.create_stream("s", 1)
    clock.now = 1_700_000_000.0  # Tue Nov 14 22:13:20 UTC 2023
    token = backend.get_shard_iterator(stream, "shardId-000000000000", "LATEST")
    clock.now += 300
    token = backend.get_records(token)["NextShardIterator"]  # exactly 5 min: still valid
    clock.now += 300.001
    with pytest.raises(ExpiredIteratorError) as exc:
        backend.get_records(token)
    assert _error(exc) == (
        "ExpiredIteratorException", 400,
        "Iterator expired. The iterator was created at time Tue Nov 14 22:18:20 UTC 2023 while "
        "right now it is Tue Nov 14 22:23:20 UTC 2023 which is further in the future than the "
        "tolerated delay of 300000 milliseconds.")


def test_an_invalid_iterator_and_limit(backend: KinesisBackend) -> None:
    with pytest.raises(InvalidArgumentError) as exc:
        backend.get_records("not-a-token")
    assert _error(exc) == ("InvalidArgumentException", 400, "Invalid ShardIterator.")
    stream = backend.create_stream("s", 1)
    token = backend.get_shard_iterator(stream, "shardId-000000000000", "LATEST")
    with pytest.raises(InvalidArgumentError) as exc2:  # API_GetRecords: above 10,000
        backend.get_records(token, 10_001)
    assert _error(exc2) == ("InvalidArgumentException", 400,
                            "Limit 10001 exceeds the maximum of 10000 records per GetRecords.")
    with pytest.raises(ValidationError) as exc3:
        backend.get_records(token, 0)
    assert exc3.value.message == (
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1")


def test_millis_behind_latest(backend: KinesisBackend, clock: Clock) -> None:
    stream = backend.create_stream("s", 1)
    for _ in range(3):
        backend.put_record(stream, "k", b"x")
        clock.now += 2
    token = backend.get_shard_iterator(stream, "shardId-000000000000", "TRIM_HORIZON")
    first = backend.get_records(token, 1)
    assert first["MillisBehindLatest"] == 4000
    rest = backend.get_records(first["NextShardIterator"])
    assert len(rest["Records"]) == 2 and rest["MillisBehindLatest"] == 0


def test_write_limits_per_shard(backend: KinesisBackend, clock: Clock) -> None:
    stream = backend.create_stream("s", 2)
    backend.enforce_limits = True
    entries = [{"PartitionKey": "k", "Data": b"x", "ExplicitHashKey": "0"}] * 500
    out = [backend.put_records(stream, entries) for _ in range(3)]
    codes = [r.get("ErrorCode", "ok") for o in out for r in o["Records"]]
    assert codes.count("ok") == 1000 and out[2]["FailedRecordCount"] == 500
    assert out[2]["Records"][0]["ErrorMessage"] == (
        f"Rate exceeded for shard shardId-000000000000 in stream s under account {ACCOUNT}.")
    with pytest.raises(ThroughputExceededError) as exc:
        backend.put_record(stream, "k", b"x", "0")
    assert exc.value.code == "ProvisionedThroughputExceededException"
    backend.put_record(stream, "k", b"x", str(MAX_HASH_KEY))  # the other shard has room
    clock.now += 1.01
    backend.put_record(stream, "k", b"x", "0")  # the window slid


def test_limiter_window_slides() -> None:
    limiter = ShardLimiter()
    assert all(limiter.admit(0.0, 10) for _ in range(1000))
    assert not limiter.admit(0.5, 10)
    assert limiter.admit(1.01, 10)
    big = ShardLimiter()
    assert big.admit(0.0, 1024 * 1024)
    assert not big.admit(0.1, 1)


def test_record_size_and_partition_key_limits(backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 1)
    with pytest.raises(ValidationError) as exc:
        backend.put_record(stream, "k", b"x" * (1024 * 1024))
    assert exc.value.message == (
        "1 validation error detected: Value at 'data' failed to satisfy constraint: Member "
        "must have length less than or equal to 1048576")
    backend.put_record(stream, "k", b"x" * (1024 * 1024 - 1))
    with pytest.raises(ValidationError) as exc:
        backend.put_record(stream, "k" * 257, b"x")
    assert exc.value.message.endswith("at 'partitionKey' failed to satisfy constraint: Member "
                                      "must have length less than or equal to 256")
    assert len(stream.shards["shardId-000000000000"]) == 1


def test_consumers_arn_states_and_the_limit_of_20(backend: KinesisBackend, clock: Clock
                                                  ) -> None:
    stream = backend.create_stream("s", 1)
    consumer = backend.register_stream_consumer(stream.arn, "c0")
    assert consumer.arn == f"{stream.arn}/consumer/c0:1700000000"
    assert backend.register_stream_consumer(stream.arn, "fixed", created=1234).arn.endswith(
        "/consumer/fixed:1234")
    assert backend.consumer(consumer_arn=consumer.arn) is consumer
    assert backend.consumer(stream.arn, "c0") is consumer
    with pytest.raises(ResourceInUseError):
        backend.register_stream_consumer(stream.arn, "c0")
    for i in range(1, 19):
        backend.register_stream_consumer(stream.arn, f"c{i}")
    with pytest.raises(LimitExceededError) as exc:
        backend.register_stream_consumer(stream.arn, "c21")
    assert _error(exc) == ("LimitExceededException", 400,
                           f"Stream s under account {ACCOUNT} has reached the limit of 20 "
                           "registered consumers.")
    backend.deregister_stream_consumer(consumer_arn=consumer.arn)
    with pytest.raises(ResourceNotFoundError) as exc2:
        backend.consumer(consumer_arn=consumer.arn)
    assert exc2.value.message == f"Consumer {consumer.arn} under account {ACCOUNT} not found."
    with pytest.raises(ResourceNotFoundError):  # the right name, another creation epoch
        backend.consumer(consumer_arn=consumer.arn.replace(":1700000000", ":1"))
    assert len(backend.list_stream_consumers(stream.arn)) == 19


def test_listeners_hear_every_put_and_a_watch_sleeps_through_rejected_records(
        backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 1)
    heard: list[tuple[str, str]] = []
    backend.add_listener(lambda name, shard: heard.append((name, shard)))
    shard = stream.shards["shardId-000000000000"]
    watch = ShardWatch(shard, shard.last, lambda r: r.data.startswith(b"yes"))
    backend.put_record(stream, "k", b"no")
    assert not watch.look() and watch.skipped == 1
    backend.put_record(stream, "k", b"yes")
    assert watch.look() and watch.skipped == 1
    assert heard == [("s", "shardId-000000000000")] * 2
    assert ShardWatch(shard, shard.starting_sequence - 1).look()
    assert not ShardWatch(shard, shard.last).look()


def _reference_look(shard: Any, after: int, wanted: Any, limit: int) -> tuple[bool, int, int]:
    """What a watch decides, by the general loop: (wake, position, records skipped)."""
    skipped = 0
    records = shard.after(after, limit)
    for record in records:
        try:
            verdict = wanted(record)
        except ValueError:
            verdict = True
        if verdict:
            return True, after, skipped
        after, skipped = int(record.sequence_number), skipped + 1
    return len(records) >= limit, after, skipped


def test_a_watch_decides_each_put_as_the_general_loop_does(backend: KinesisBackend) -> None:
    """One new record (the usual put) takes the watch's short path; several, or a position
    behind, take the loop: position, skipped count and wake-up are the same either way."""
    import random

    rng = random.Random(26)
    stream = backend.create_stream("s", 1)
    shard = stream.shards["shardId-000000000000"]

    def wanted(record: Any) -> bool:
        if record.data == b"boom":
            raise ValueError("a filter that fails wakes the reader")
        return bool(record.data.startswith(b"yes"))

    watch = ShardWatch(shard, shard.last, wanted)
    ref_after, ref_skipped, woken = shard.last, 0, 0
    for _ in range(400):
        for _ in range(rng.choice((1, 1, 1, 1, 2, 3))):
            data = rng.choice((b"no", b"no", b"no", b"yes", b"boom"))
            backend.put_record(stream, "k", data)
        if rng.random() < 0.2:
            continue  # this put's wake-up is missed: the next look sees several records
        expected = _reference_look(shard, ref_after, wanted, ShardWatch.LOOK_LIMIT)
        wake = watch.look()
        assert (wake, watch.after, watch.skipped) == (
            expected[0], expected[1], ref_skipped + expected[2])
        ref_after, ref_skipped = expected[1], ref_skipped + expected[2]
        if wake:  # the reader reads everything, then waits again from the end
            woken += 1
            watch = ShardWatch(shard, shard.last, wanted)
            ref_after, ref_skipped = shard.last, 0
    assert woken > 50 and ref_skipped >= 0


def test_split_shard_closes_the_parent(backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 1)
    backend.put_record(stream, "k", b"old")
    low, high = backend.split_shard(stream, "shardId-000000000000", 2**127)
    parent = stream.shards["shardId-000000000000"]
    assert not parent.is_open and [s.shard_id for s in stream.open_shards] == [
        low.shard_id, high.shard_id]
    token = backend.get_shard_iterator(stream, parent.shard_id, "TRIM_HORIZON")
    out = backend.get_records(token)
    assert [r.data for r in out["Records"]] == [b"old"] and out["NextShardIterator"] is None
    assert [c["ShardId"] for c in out["ChildShards"]] == [low.shard_id, high.shard_id]
    assert backend.put_record(stream, "k", b"x", str(2**127))[1] is high


def test_tags_are_added_merged_removed_and_bounded(backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 1)
    backend.tag(stream, {"team": "chat", "env": "dev"})
    backend.tag(stream, {"env": "prod"})
    backend.untag(stream, ["team", "absent"])
    assert stream.tags == {"env": "prod"}
    with pytest.raises(InvalidArgumentError):
        backend.tag(stream, {f"k{i}": "v" for i in range(11)})  # 10 a call
    for batch in range(4):
        backend.tag(stream, {f"b{batch}-{i}": "v" for i in range(10)})
    backend.tag(stream, {f"last-{i}": "v" for i in range(9)})
    assert len(stream.tags) == 50
    with pytest.raises(LimitExceededError):
        backend.tag(stream, {"one-too-many": "v"})  # 50 a stream
    assert len(stream.tags) == 50


def test_a_consumer_is_found_by_its_arn_with_or_without_its_stream_arn(
        backend: KinesisBackend) -> None:
    stream = backend.create_stream("s", 1)
    consumer = backend.register_stream_consumer(stream.arn, "c", created=1700000000)
    assert consumer.arn == f"{stream.arn}/consumer/c:1700000000"
    assert backend.consumer(consumer_arn=consumer.arn) is consumer
    assert backend.consumer(stream.arn, consumer_arn=consumer.arn) is consumer  # as AWS recorded
    with pytest.raises(ResourceNotFoundError):
        backend.consumer(stream.arn + "-other", consumer_arn=consumer.arn)
