"""Event source mapping failure paths through the twin's real parts.

Built in process the way ``pipeline.local.twin`` wires them: the moto-backed ``AwsServices``, a
``KinesisShardSource`` and ``SqsFailureSink`` over them, real ``Workers`` (one child process per
warm function, loading a tiny handler from a temporary directory) and one
``EventSourceMappingRunner`` per mapping, configured by ``MappingConfig.from_cfn`` from
hand-written resolved ``AWS::Lambda::EventSourceMapping`` properties. The only addition is
:class:`Observed`, which forwards every invocation to the real ``Workers`` and records its result.

The handler writes what it was given ("delivered", one line per invocation) and what it
committed ("committed", one line per record) to a log file the test reads.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from polling import until

from pipeline.local.esm import EventSourceMappingRunner, InvokeResult, MappingConfig
from pipeline.local.services import AwsServices
from pipeline.local.shard_source import KinesisShardSource, SqsFailureSink
from pipeline.local.workers import FunctionSpec, Workers

pytestmark = pytest.mark.twin

ACCOUNT, REGION = "123456789012", "us-east-1"

HANDLER = """
import base64, json, os, signal, time

LOG = os.environ["TEST_LOG"]
MARKER = os.environ["TEST_MARKER"]
HOLD_S = float(os.environ.get("TEST_HOLD_S", "0"))


def _write(entry):
    with open(LOG, "a") as f:  # one small write per line: lines do not interleave
        f.write(json.dumps(entry) + "\\n")


def _first_time():
    # True once per test, across worker processes (the marker file survives a crash)
    try:
        os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def handler(event, context):
    records = [(r["kinesis"]["sequenceNumber"], r["kinesis"]["partitionKey"],
                json.loads(base64.b64decode(r["kinesis"]["data"]))) for r in event["Records"]]
    t0 = time.time()
    _write({"kind": "delivered", "seqs": [s for s, _, _ in records], "pid": os.getpid()})
    if any(d.get("do") == "raise" for _, _, d in records):
        raise ValueError("poison record")  # validate first, commit nothing
    time.sleep(HOLD_S)
    for seq, key, d in records:
        do = d.get("do")
        if do == "sleep":
            time.sleep(d["s"])
        if do == "kill" and _first_time():
            os.kill(os.getpid(), signal.SIGKILL)
        if do == "fail_once" and _first_time():
            return {"batchItemFailures": [{"itemIdentifier": seq}]}
        _write({"kind": "committed", "seq": seq, "key": key, "i": d["i"], "pid": os.getpid()})
    _write({"kind": "done", "t0": t0, "t1": time.time(), "n": len(records)})
    return None
"""


class Observed:
    """The runner's invoker: the real ``Workers``, with each result kept and announced."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.results: list[InvokeResult] = []
        self.changed = asyncio.Event()

    async def invoke(self, function_name: str, event: dict[str, Any]) -> InvokeResult:
        try:
            result = await self.workers.invoke(function_name, event)
            self.results.append(result)
            return result
        finally:
            self.changed.set()


class Function:
    """A handler directory, its log and marker, and its ``FunctionSpec``."""

    def __init__(self, tmp: Path, name: str, *, timeout_s: float, hold_s: float) -> None:
        code = tmp / name
        code.mkdir()
        (code / "handler.py").write_text(textwrap.dedent(HANDLER))
        self.log = tmp / f"{name}.log"
        self.spec = FunctionSpec(
            name=name, arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            handler="handler.handler", code_dir=code, timeout_s=timeout_s,
            environment={"TEST_LOG": str(self.log), "TEST_MARKER": str(tmp / f"{name}.marker"),
                         "TEST_HOLD_S": str(hold_s)},
        )

    def entries(self, kind: str) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().split("\n")[:-1]  # a line being written is not complete
        return [e for e in map(json.loads, lines) if e["kind"] == kind]

    def committed(self) -> list[str]:
        return [e["seq"] for e in self.entries("committed")]

    def committed_keys(self) -> list[str]:
        return [e["key"] for e in self.entries("committed")]

    def delivered(self) -> list[list[str]]:
        return [e["seqs"] for e in self.entries("delivered")]


class Rig:
    """A stream, its enhanced fan-out consumer, an on-failure queue, functions and mappings."""

    def __init__(self, tmp: Path, shards: int) -> None:
        self.tmp = tmp
        self.services = AwsServices()
        self.source = KinesisShardSource(self.services, asyncio.get_running_loop())
        self.sink = SqsFailureSink(self.services)
        self.name = f"fp-{uuid.uuid4().hex[:10]}"
        self.call("kinesis", "CreateStream", {"StreamName": self.name, "ShardCount": shards})
        self.stream_arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{self.name}"
        self.consumer_arn = self.call("kinesis", "RegisterStreamConsumer", {
            "StreamARN": self.stream_arn, "ConsumerName": "consumer"})["Consumer"]["ConsumerARN"]
        self.queue_url = self.call("sqs", "CreateQueue", {"QueueName": self.name})["QueueUrl"]
        self.queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.name}"
        self.functions: list[Function] = []
        self.workers: Workers | None = None
        self.invoker: Observed | None = None
        self.runners: list[EventSourceMappingRunner] = []
        self.dlq_seen: list[dict[str, Any]] = []

    def call(self, service: str, action: str, body: dict[str, Any]) -> Any:
        response = self.services.call_aws(service, action, json.dumps(body).encode(), None)
        assert response.status == 200, response.body
        return json.loads(response.body or b"{}")

    async def start(self, *functions: Function) -> Observed:
        self.functions = list(functions)
        self.workers = Workers([f.spec for f in functions], "http://127.0.0.1:1")
        await self.workers.start()
        self.invoker = Observed(self.workers)
        return self.invoker

    async def mapping(self, function: Function, **properties: Any) -> EventSourceMappingRunner:
        """A running mapping from resolved CloudFormation properties (as the stack has them)."""
        assert self.invoker is not None
        props = {"FunctionName": function.spec.name, "EventSourceArn": self.consumer_arn,
                 "DestinationConfig": {"OnFailure": {"Destination": self.queue_arn}},
                 **properties}
        config = MappingConfig.from_cfn(props, logical_id=f"{function.spec.name}Mapping")
        runner = EventSourceMappingRunner(config, self.source, self.invoker, self.sink,
                                          retry_backoff_s=0.01, max_backoff_s=0.05)
        await runner.start()
        self.runners.append(runner)
        return runner

    def put(self, records: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
        """PutRecords in one call; (sequence number, shard id) per record, in order."""
        entries = [{"PartitionKey": key, "Data": base64.b64encode(json.dumps(d).encode()).decode()}
                   for key, d in records]
        out = self.call("kinesis", "PutRecords", {"StreamName": self.name, "Records": entries})
        assert not out.get("FailedRecordCount")
        return [(r["SequenceNumber"], r["ShardId"]) for r in out["Records"]]

    def dlq(self) -> list[dict[str, Any]]:
        """Every message the on-failure queue has received so far (received once, kept)."""
        got = self.call("sqs", "ReceiveMessage",
                        {"QueueUrl": self.queue_url, "MaxNumberOfMessages": 10})
        self.dlq_seen.extend(json.loads(m["Body"]) for m in got.get("Messages", []))
        return self.dlq_seen

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait for ``predicate``, re-checked after every invocation (and every 50 ms, for what
        a handler writes before it is killed); fail at the deadline."""
        assert self.invoker is not None
        await until(predicate, timeout, wake=self.invoker.changed, poll=0.05)

    async def close(self) -> None:
        for runner in self.runners:
            await runner.stop()
        if self.workers is not None:
            await self.workers.stop()
        self.source.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    made = Rig(tmp_path, shards=1)
    yield made
    await made.close()


def _in_key_order(function: Function) -> bool:
    by_key: dict[str, list[int]] = {}
    for e in function.entries("committed"):
        by_key.setdefault(e["key"], []).append(int(e["seq"]))
    return all(seqs == sorted(seqs) for seqs in by_key.values())


async def test_poison_record_is_bisected_out_to_the_destination(rig: Rig, tmp_path: Path) -> None:
    """A function error with BisectBatchOnFunctionError splits the batch until the failing
    record is alone; it is retried MaximumRetryAttempts times and then its batch info goes to
    the on-failure destination; the rest is processed once, in order, and the shard moves on.
    https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html
    https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-errors.html
    """
    fn = Function(tmp_path, "poison", timeout_s=5, hold_s=0)
    await rig.start(fn)
    await rig.mapping(fn, StartingPosition="LATEST", BatchSize=100,
                      BisectBatchOnFunctionError=True, MaximumRetryAttempts=2)
    put = rig.put([(f"k{i % 5}", {"i": i, "do": "raise" if i == 37 else None})
                   for i in range(100)])
    seqs = [s for s, _ in put]
    poison, shard_id = put[37]
    await rig.until(lambda: len(rig.dlq()) == 1 and len(fn.committed()) >= 99)

    assert fn.delivered()[0] == seqs  # one batch of BatchSize records first
    assert Counter(fn.committed()) == Counter(s for s in seqs if s != poison)  # exactly once
    assert _in_key_order(fn)
    delivered = fn.delivered()
    assert delivered[1] == seqs[:50]  # the failed batch was split in two halves
    alone = delivered.index([poison])  # bisected down to the poison alone, then retried
    assert delivered[alone:alone + 3] == [[poison]] * 3 and delivered.count([poison]) == 3
    assert all(poison not in batch for batch in delivered[alone + 3:])
    (message,) = rig.dlq_seen
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["functionArn"] == fn.spec.arn
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert message["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                          "functionError": "Unhandled"}
    assert message["version"] == "1.0"
    info = message["KinesisBatchInfo"]
    assert info["shardId"] == shard_id
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison
    assert info["batchSize"] == 1
    assert info["streamArn"] == rig.stream_arn  # the stream's ARN, not the consumer's
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")

    later = [s for s, _ in rig.put([("k0", {"i": 100}), ("k1", {"i": 101})])]
    await rig.until(lambda: set(later) <= set(fn.committed()))
    assert fn.committed()[-2:] == later


async def test_timeout_is_retried_bisected_and_the_worker_respawned(
    rig: Rig, tmp_path: Path
) -> None:
    """A function that runs past its timeout fails like Lambda ("Task timed out after 1.00
    seconds"); the invocation counts as a function error, so it is bisected and retried, and the
    record ends in the on-failure destination. The timed-out environment is replaced.
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html
    https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-errors.html
    """
    fn = Function(tmp_path, "slow", timeout_s=1, hold_s=0)
    invoker = await rig.start(fn)
    await rig.mapping(fn, StartingPosition="LATEST", BatchSize=4,
                      BisectBatchOnFunctionError=True, MaximumRetryAttempts=1)
    put = rig.put([("k", {"i": i, "do": "sleep" if i == 2 else None, "s": 5}) for i in range(4)])
    seqs = [s for s, _ in put]
    await rig.until(lambda: len(rig.dlq()) == 1 and seqs[3] in fn.committed())

    timeouts = [r for r in invoker.results if not r.ok]
    assert len(timeouts) == 4  # [0..3] -> [2, 3] -> [2] -> one retry of [2]
    for result in timeouts:
        assert result.error_type == "Sandbox.Timedout"
        assert result.error_message is not None
        assert result.error_message.endswith("Task timed out after 1.00 seconds")
    sizes = [len(b) for b in fn.delivered()]
    assert sizes == [4, 2, 2, 1, 1, 1]  # [0..3]x, [0, 1]ok, [2, 3]x, [2]x, [2]x, [3]ok
    (message,) = rig.dlq_seen
    info = message["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[2]
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["responseContext"]["functionError"] == "Unhandled"

    # Each timeout killed its process; the record after it ran in a fresh one.
    timed_out_pids = {e["pid"] for e in fn.entries("delivered") if seqs[2] in e["seqs"]}
    assert len(timed_out_pids) == 4
    for pid in timed_out_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    later = [s for s, _ in rig.put([("k", {"i": 4}), ("k", {"i": 5})])]
    await rig.until(lambda: set(later) <= set(fn.committed()))
    assert fn.committed()[-2:] == later
    assert not {e["pid"] for e in fn.entries("committed")[-2:]} & timed_out_pids


async def test_killed_worker_retries_the_batch_from_its_checkpoint(
    rig: Rig, tmp_path: Path
) -> None:
    """A worker process killed mid-batch is a function error (Runtime.ExitError); Lambda retries
    the whole batch from the last checkpoint, so every record is processed at least once and
    none is skipped.
    https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-errors.html
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-retries.html
    """
    fn = Function(tmp_path, "crash", timeout_s=5, hold_s=0)
    invoker = await rig.start(fn)
    await rig.mapping(fn, StartingPosition="LATEST", BatchSize=10, MaximumRetryAttempts=3)
    put = rig.put([(f"k{i % 3}", {"i": i, "do": "kill" if i == 4 else None}) for i in range(10)])
    seqs = [s for s, _ in put]
    await rig.until(lambda: set(seqs) <= set(fn.committed()))

    first = invoker.results[0]
    assert not first.ok and first.error_type == "Runtime.ExitError"
    assert first.error_message is not None and "Runtime exited with error: signal: killed" in (
        first.error_message)
    assert fn.delivered()[:2] == [seqs, seqs]  # the same batch again, from its first record
    # committed before the kill, then the whole batch again in order: at least once, no gap
    assert fn.committed() == seqs[:4] + seqs
    assert rig.dlq() == []

    later = [s for s, _ in rig.put([("k0", {"i": 10}), ("k1", {"i": 11})])]
    await rig.until(lambda: set(later) <= set(fn.committed()))
    assert fn.delivered()[2:] == [later]  # the checkpoint moved past the batch, nothing skipped


async def test_partial_batch_response_retries_from_the_failed_record(
    rig: Rig, tmp_path: Path
) -> None:
    """With ReportBatchItemFailures, a response naming one itemIdentifier moves the checkpoint
    to it: the retry starts at exactly that sequence number, earlier records are not re-sent.
    https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html
    """
    fn = Function(tmp_path, "partial", timeout_s=5, hold_s=0)
    invoker = await rig.start(fn)
    await rig.mapping(fn, StartingPosition="LATEST", BatchSize=10, MaximumRetryAttempts=2,
                      FunctionResponseTypes=["ReportBatchItemFailures"])
    put = rig.put([(f"k{i % 2}", {"i": i, "do": "fail_once" if i == 5 else None})
                   for i in range(10)])
    seqs = [s for s, _ in put]
    await rig.until(lambda: set(seqs) <= set(fn.committed()))

    assert fn.delivered() == [seqs, seqs[5:]]
    assert Counter(fn.committed()) == Counter(seqs)  # each once
    assert all(r.ok for r in invoker.results)  # a partial response is not a function error
    assert rig.dlq() == []


async def test_parallelization_factor_keeps_key_order(rig: Rig, tmp_path: Path) -> None:
    """ParallelizationFactor 3 processes up to three batches of one shard at once, and keeps
    the records of one partition key in order.
    https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html#services-kinesis-parallelization
    """
    fn = Function(tmp_path, "parallel", timeout_s=5, hold_s=0.1)
    await rig.start(fn)
    await rig.mapping(fn, StartingPosition="LATEST", BatchSize=4, ParallelizationFactor=3)
    put = rig.put([(f"key-{i % 10}", {"i": i}) for i in range(60)])
    seqs = [s for s, _ in put]
    assert len({shard for _, shard in put}) == 1
    await rig.until(lambda: len(fn.committed()) >= 60)

    assert Counter(fn.committed()) == Counter(seqs)  # each once
    assert _in_key_order(fn)
    spans = sorted((e["t0"], e["t1"]) for e in fn.entries("done"))
    overlapping = any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    assert overlapping, "never more than one batch of the shard in flight"


async def test_starting_positions(tmp_path: Path) -> None:
    """A new mapping at TRIM_HORIZON reads the records already in the stream; at LATEST only
    the records put after it started.
    https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html#lambda-CreateEventSourceMapping-request-StartingPosition
    """
    rig = Rig(tmp_path, shards=2)
    try:
        replay = Function(tmp_path, "replay", timeout_s=5, hold_s=0)
        latest = Function(tmp_path, "latest", timeout_s=5, hold_s=0)
        await rig.start(replay, latest)
        # sequence numbers are per shard here: records are told apart by their unique keys
        before = rig.put([(f"b{i}", {"i": i}) for i in range(8)])
        await rig.mapping(replay, StartingPosition="TRIM_HORIZON", BatchSize=10)
        await rig.mapping(latest, StartingPosition="LATEST", BatchSize=10)
        after = rig.put([(f"a{i}", {"i": i}) for i in range(8)])
        assert {s for _, s in before} == {s for _, s in after} == {
            "shardId-000000000000", "shardId-000000000001"}  # both shards have both
        old, new = {f"b{i}" for i in range(8)}, {f"a{i}" for i in range(8)}
        await rig.until(lambda: set(replay.committed_keys()) >= old | new
                        and set(latest.committed_keys()) >= new)
        assert sorted(replay.committed_keys()) == sorted(old | new)
        assert sorted(latest.committed_keys()) == sorted(new)  # nothing from before its start
    finally:
        await rig.close()
