"""The start-up canary through a mapping's read path, and a failing reader said once, in a line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from esm_harness import DLQ, FunctionInvoker, ListSink, Probe, decoded
from polling import until

from pipeline.local.esm import EventSourceMappingRunner, MappingConfig
from pipeline.local.esm.canary import Canary
from pipeline.local.esm.memory import MemoryStream


def config(stream: MemoryStream, **kw: Any) -> MappingConfig:
    return MappingConfig(**{"uuid": "u-1", "function_name": "echo",
                            "event_source_arn": stream.consumer_arn("echo"),
                            "on_failure_destination_arn": DLQ, **kw})


async def test_a_reader_reads_the_canary_and_the_function_never_sees_it() -> None:
    stream, probe, canary = MemoryStream(shards=1), Probe(), Canary()
    delivered: list[Any] = []
    invoker = FunctionInvoker(lambda event: delivered.extend(decoded(event)), probe)
    # The filter rejects the canary's data: the reader must still be woken for it.
    runner = EventSourceMappingRunner(
        config(stream, filters=({"data": {"routeKey": ["echo"]}},), starting_position="LATEST"),
        stream, invoker, ListSink(probe), canary=canary)
    await runner.start()
    try:
        canary.expect("u-1", stream.stream_arn, runner.shard_ids)
        assert canary.missing() == [("u-1", "shardId-000000000000")]
        stream.put(canary.key, canary.record())
        stream.put("conn", json.dumps({"routeKey": "echo", "n": 1}).encode())
        assert await canary.wait(5.0) == []
        await probe.until(lambda: len(delivered) == 1)
        assert delivered == [{"routeKey": "echo", "n": 1}]
        assert runner.stats.records_read == 1  # the canary is not counted as a frame
    finally:
        await runner.stop()


async def test_a_reader_that_never_gets_its_canary_is_reported_missing() -> None:
    canary = Canary()
    canary.expect("u-1", "arn:stream", ["shardId-000000000000", "shardId-000000000001"])
    canary.seen("u-1", "shardId-000000000001")
    canary.seen("someone-else", "shardId-000000000000")  # not expected: ignored
    assert await canary.wait(0.05) == [("u-1", "shardId-000000000000")]
    assert Canary().key != canary.key  # a fresh key per start: no client record carries it


class BrokenStream(MemoryStream):
    """A source whose reads fail the way a broken dependency's model does."""

    def __init__(self) -> None:
        super().__init__(shards=2)
        self.reads = 0

    def read(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        raise TypeError("float() argument must be a string or a real number, not 'datetime'")


async def test_failing_readers_are_said_once_per_mapping_in_one_line_and_fail_the_canary(
        caplog: pytest.LogCaptureFixture) -> None:
    stream, probe, canary = BrokenStream(), Probe(), Canary()
    runner = EventSourceMappingRunner(
        config(stream), stream, FunctionInvoker(lambda event: None, probe), ListSink(probe),
        canary=canary, retry_backoff_s=0.001, max_backoff_s=0.001)
    caplog.set_level(logging.DEBUG, logger="pipeline.local.esm.runner")
    await runner.start()
    try:
        canary.expect("u-1", stream.stream_arn, runner.shard_ids)
        await until(lambda: stream.reads >= 5)
        assert await canary.wait(0.05) == [("u-1", "shardId-000000000000"),
                                           ("u-1", "shardId-000000000001")]
    finally:
        await runner.stop()
    assert runner.failing_readers == {"shardId-000000000000", "shardId-000000000001"}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "mapping echo (u-1): reading shardId-000000000000 failed: TypeError: float() argument "
        "must be a string or a real number, not 'datetime' (retrying)"]
    assert errors[0].exc_info is None  # one line on the console; the traceback is at DEBUG
    assert runner.read_error is not None and runner.read_error.startswith("reading shardId")
