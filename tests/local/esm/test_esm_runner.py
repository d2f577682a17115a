"""The runner end to end over an in-memory stream, with Python functions as the consumer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from esm_harness import DLQ, FunctionInvoker, ListSink, Probe, decoded

from pipeline.local.esm import EventSourceMappingRunner, MappingConfig
from pipeline.local.esm.batching import lane_of
from pipeline.local.esm.memory import MemoryStream


class Rig:
    """One stream, one probe, and the runners started on it (stopped at teardown)."""

    def __init__(self, shards: int = 1, clock: Callable[[], float] | None = None) -> None:
        self.stream = MemoryStream(shards=shards) if clock is None else MemoryStream(
            shards=shards, clock=clock)
        self.probe = Probe()
        self.runners: list[EventSourceMappingRunner] = []

    def config(self, **kw: Any) -> MappingConfig:
        base: dict[str, Any] = {"uuid": "u", "function_name": "consumer",
                                "event_source_arn": self.stream.consumer_arn("consumer"),
                                "on_failure_destination_arn": DLQ}
        return MappingConfig(**{**base, **kw})

    async def start(self, function: Callable[[dict[str, Any]], Any], *, timeout_s: float = 5.0,
                    clock: Callable[[], float] | None = None, **kw: Any
                    ) -> tuple[EventSourceMappingRunner, FunctionInvoker, ListSink]:
        invoker = FunctionInvoker(function, self.probe, timeout_s=timeout_s)
        sink = ListSink(self.probe)
        extra: dict[str, Any] = {"clock": clock} if clock else {}
        runner = EventSourceMappingRunner(
            self.config(**kw), self.stream, invoker, sink, retry_backoff_s=0.001,
            invoke_identity_arn="arn:aws:iam::123456789012:role/consumer-role", **extra)
        await runner.start()
        self.runners.append(runner)
        return runner, invoker, sink

    def put(self, key: str, value: Any, **kw: Any) -> str:
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        return self.stream.put(key, data, **kw)[1].sequence_number


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = Rig()
    yield made
    for runner in made.runners:
        await runner.stop()


def transactional(committed: list[Any], poison: Callable[[Any], bool]) -> Callable[..., Any]:
    """A consumer that commits a batch only when no record in it is poison."""
    def function(event: dict[str, Any]) -> None:
        values = decoded(event)
        if any(poison(v) for v in values):
            raise ValueError("poison record")
        committed.extend(values)
    return function


async def test_poison_record_in_a_batch_of_100(rig: Rig) -> None:
    committed: list[Any] = []
    runner, invoker, sink = await rig.start(
        transactional(committed, lambda v: v == 37),
        bisect_batch_on_function_error=True, maximum_retry_attempts=2)
    seqs = [rig.put("conn-1", i) for i in range(100)]
    await rig.probe.until(lambda: len(committed) == 99 and len(sink.sent) == 1)
    assert committed == [i for i in range(100) if i != 37]  # exactly once, in order
    destination, message = sink.sent[0]
    assert destination == DLQ
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert message["requestContext"]["functionArn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:consumer")
    assert message["responseContext"]["functionError"] == "Unhandled"
    info = message["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[37]
    assert info["batchSize"] == 1 and info["streamArn"] == rig.stream.stream_arn
    assert len(invoker.events[0]["Records"]) == 100  # one batch of 100 first
    # The shard is not blocked: later records flow.
    rig.put("conn-1", 100)
    await rig.probe.until(lambda: committed[-1:] == [100])
    assert runner.stats.records_discarded == 1 and runner.stats.records_processed == 100


async def test_timeout_is_a_function_error(rig: Rig) -> None:
    committed: list[Any] = []

    async def function(event: dict[str, Any]) -> None:
        values = decoded(event)
        if 4 in values:
            await asyncio.Event().wait()  # hangs until the invoker's timeout
        committed.extend(values)

    runner, _, sink = await rig.start(function, timeout_s=0.05,
                                      bisect_batch_on_function_error=True, maximum_retry_attempts=0)
    for i in range(10):
        rig.put("k", i)
    await rig.probe.until(lambda: len(committed) == 9 and len(sink.sent) == 1)
    assert committed == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert sink.sent[0][1]["KinesisBatchInfo"]["batchSize"] == 1
    assert runner.stats.function_errors >= 2


async def test_an_invoker_that_raises_counts_as_a_function_error(rig: Rig) -> None:
    class Broken:
        async def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
            rig.probe.notify()
            raise ConnectionResetError("worker died")

    sink = ListSink(rig.probe)
    runner = EventSourceMappingRunner(rig.config(maximum_retry_attempts=1), rig.stream, Broken(),
                                      sink, retry_backoff_s=0.001)
    rig.runners.append(runner)
    await runner.start()
    rig.put("k", 1)
    await rig.probe.until(lambda: len(sink.sent) == 1)
    assert runner.stats.function_errors == 2 and runner.stats.invocations == 2


async def test_partial_batch_response_retries_from_the_lowest_failure(rig: Rig) -> None:
    seen: list[list[int]] = []

    def function(event: dict[str, Any]) -> dict[str, Any]:
        values = decoded(event)
        seen.append(values)
        if len(seen) == 1:
            failed = [r["kinesis"]["sequenceNumber"] for r in event["Records"][5:4:-1]]
            failed += [event["Records"][3]["kinesis"]["sequenceNumber"]]
            return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}
        if len(seen) == 2:
            return {"batchItemFailures": [{"itemIdentifier": ""}]}  # malformed: whole batch
        return {"batchItemFailures": []}

    await rig.start(function, report_batch_item_failures=True, maximum_retry_attempts=5)
    for i in range(10):
        rig.put("k", i)
    await rig.probe.until(lambda: len(seen) == 3)
    assert seen == [list(range(10)), list(range(3, 10)), list(range(3, 10))]
    rig.put("k", 10)
    await rig.probe.until(lambda: len(seen) == 4)
    assert seen[3] == [10]  # checkpoint moved past the retried records


def keys_for_lanes(lanes: int, per_lane: int) -> list[str]:
    keys: dict[int, list[str]] = {i: [] for i in range(lanes)}
    i = 0
    while any(len(v) < per_lane for v in keys.values()):
        key = f"conn-{i}"
        lane = lane_of(key, lanes)
        if len(keys[lane]) < per_lane:
            keys[lane].append(key)
        i += 1
    return [k for v in keys.values() for k in v]


async def test_parallelization_factor_keeps_per_key_order(rig: Rig) -> None:
    got: list[tuple[str, int]] = []

    async def function(event: dict[str, Any]) -> None:
        await asyncio.sleep(0.001)  # simulated work, lets other lanes run concurrently
        got.extend((v["key"], v["n"]) for v in decoded(event))

    _, invoker, _ = await rig.start(function, parallelization_factor=3, batch_size=4)
    keys = keys_for_lanes(3, 2)
    for n in range(20):
        for key in keys:
            rig.put(key, {"key": key, "n": n})
    await rig.probe.until(lambda: len(got) == 20 * len(keys))
    for key in keys:
        assert [n for k, n in got if k == key] == list(range(20))
    assert invoker.max_in_flight >= 2
    assert all(len(e["Records"]) <= 4 for e in invoker.events)


async def test_trim_horizon_replays_latest_does_not(rig: Rig) -> None:
    for i in range(5):
        rig.put("k", {"old": i})
    replay: list[Any] = []
    latest: list[Any] = []
    await rig.start(lambda e: replay.extend(decoded(e)), starting_position="TRIM_HORIZON")
    await rig.start(lambda e: latest.extend(decoded(e)), starting_position="LATEST")
    for i in range(3):
        rig.put("k", {"new": i})
    await rig.probe.until(lambda: len(replay) == 8 and len(latest) == 3)
    assert replay == [{"old": i} for i in range(5)] + [{"new": i} for i in range(3)]
    assert latest == [{"new": i} for i in range(3)]


async def test_at_timestamp_starts_at_the_first_record_at_or_after_it(rig: Rig) -> None:
    for i, arrival in enumerate((100.0, 200.0, 300.0)):
        rig.put("k", i, arrival=arrival)
    got: list[Any] = []
    await rig.start(lambda e: got.extend(decoded(e)), starting_position="AT_TIMESTAMP",
                    starting_position_timestamp=200.0)
    await rig.probe.until(lambda: len(got) == 2)
    assert got == [1, 2]


async def test_filters_drop_records_and_the_checkpoint_moves_on(rig: Rig) -> None:
    got: list[Any] = []
    runner, _, _ = await rig.start(lambda e: got.extend(decoded(e)),
                                   filters=({"data": {"routeKey": ["echo"]}},))
    rig.put("a", {"routeKey": "echo", "n": 1})
    rig.put("a", {"routeKey": "chat", "n": 2})
    rig.put("a", b"\x00not json")
    rig.put("a", {"routeKey": "echo", "n": 4})
    await rig.probe.until(lambda: len(got) == 2)
    assert [v["n"] for v in got] == [1, 4]
    assert runner.stats.records_filtered_out == 2 and runner.stats.records_read == 4


async def test_disabled_mapping_does_not_run(rig: Rig) -> None:
    off: list[Any] = []
    on: list[Any] = []
    disabled, _, _ = await rig.start(lambda e: off.extend(decoded(e)), enabled=False)
    await rig.start(lambda e: on.extend(decoded(e)))
    rig.put("k", 1)
    await rig.probe.until(lambda: on == [1])
    assert off == [] and not disabled.running and disabled.stats.records_read == 0


async def test_records_older_than_the_maximum_age_go_to_the_destination(rig: Rig) -> None:
    got: list[Any] = []
    now = 10_000.0
    rig.put("k", "stale-1", arrival=now - 500)
    rig.put("k", "stale-2", arrival=now - 400)
    rig.put("k", "fresh", arrival=now - 5)
    _, _, sink = await rig.start(lambda e: got.extend(decoded(e)), clock=lambda: now,
                                 starting_position="TRIM_HORIZON", maximum_record_age_s=60)
    await rig.probe.until(lambda: got == ["fresh"] and len(sink.sent) == 1)
    message = sink.sent[0][1]
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert message["requestContext"]["approximateInvokeCount"] == 0
    assert "functionError" not in message["responseContext"]
    assert message["KinesisBatchInfo"]["batchSize"] == 2


async def test_event_shape_and_one_reader_per_shard() -> None:
    rig = Rig(shards=2)
    events: list[dict[str, Any]] = []
    runner, _, _ = await rig.start(events.append)
    try:
        keys = [f"k{i}" for i in range(20)]
        for key in keys:
            rig.put(key, key)
        await rig.probe.until(lambda: sum(len(e["Records"]) for e in events) == 20)
        records = [r for e in events for r in e["Records"]]
        shards = {r["eventID"].split(":")[0] for r in records}
        assert shards == set(rig.stream.shards)  # both shards delivered
        for record in records:
            assert record["eventSourceARN"] == rig.stream.stream_arn  # the stream, not consumer
            assert record["invokeIdentityArn"] == "arn:aws:iam::123456789012:role/consumer-role"
            assert record["awsRegion"] == "us-east-1" and record["eventSource"] == "aws:kinesis"
        assert all(len({r["eventID"].split(":")[0] for r in e["Records"]}) == 1 for e in events)
    finally:
        await runner.stop()


async def test_a_blocked_lane_stops_the_reader_bounded_backlog(rig: Rig) -> None:
    release = asyncio.Event()
    count = 0

    async def function(event: dict[str, Any]) -> None:
        nonlocal count
        await release.wait()
        count += len(event["Records"])

    runner, invoker, _ = await rig.start(function, batch_size=1)
    for i in range(3000):
        rig.put("k", i)
    await rig.probe.until(lambda: len(invoker.events) == 1)
    for _ in range(20):
        await asyncio.sleep(0)  # give the reader every chance to overrun (it must not)
    assert runner.stats.records_read == 1001  # high water (1000) + the one taken
    release.set()
    await rig.probe.until(lambda: count == 3000, timeout=20)
    assert runner.stats.records_read == 3000


async def test_stop_is_prompt_even_if_the_invoker_swallows_a_cancellation(rig: Rig) -> None:
    swallowed = 0

    class Stubborn:
        async def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
            nonlocal swallowed
            rig.probe.notify()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                swallowed += 1  # like 3.11's wait_for racing a completion
            await asyncio.Event().wait()

    runner = EventSourceMappingRunner(rig.config(), rig.stream, Stubborn(), ListSink(rig.probe))
    await runner.start()
    rig.put("k", 1)
    await rig.probe.until(lambda: runner.stats.invocations == 1)
    async with asyncio.timeout(2):
        await runner.stop()
    assert swallowed == 1 and not runner.running


async def test_an_invoker_returning_garbage_is_a_function_error(rig: Rig) -> None:
    class Garbage:
        async def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
            rig.probe.notify()
            return {"StatusCode": 200}

    sink = ListSink(rig.probe)
    runner = EventSourceMappingRunner(rig.config(maximum_retry_attempts=0), rig.stream, Garbage(),
                                      sink, retry_backoff_s=0.001)
    rig.runners.append(runner)
    await runner.start()
    rig.put("k", 1)
    await rig.probe.until(lambda: len(sink.sent) == 1)
    assert runner.stats.function_errors == 1


async def test_a_shard_added_later_is_read_from_its_start(rig: Rig) -> None:
    got: list[Any] = []
    invoker = FunctionInvoker(lambda e: got.extend(decoded(e)), rig.probe)
    runner = EventSourceMappingRunner(rig.config(), rig.stream, invoker, ListSink(rig.probe),
                                      shard_refresh_s=0.01)
    rig.runners.append(runner)
    await runner.start()
    new_shard = rig.stream.add_shard()
    keys = [k for k in (f"k{i}" for i in range(50)) if rig.stream.shard_of(k) == new_shard]
    for key in keys[:3]:
        rig.put(key, key)  # lands on the new shard, before or after discovery
    await rig.probe.until(lambda: sorted(got) == sorted(keys[:3]))
    assert {e["Records"][0]["eventID"].split(":")[0] for e in invoker.events} == {new_shard}
