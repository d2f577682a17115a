"""Real AWS as the oracle: replay LocalStack's AWS recordings (cases/*.json) against the twin.

Each case is one LocalStack test whose answers its CI recorded against AWS. The replay makes the
same requests of the twin (its Kinesis over boto3, its event source mapping engine, its API
Gateway integration path) and compares shapes, codes, statuses and values with
:func:`aws_recording.compare`. Cases for what the twin does not emulate are skipped with the
reason their case file gives; differences of the twin's Kinesis are listed below, strict xfails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from aws_recording import Case, compare, load_cases
from botocore.config import Config
from botocore.exceptions import ClientError
from stacks import aws_services

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local import vtl
from pipeline.local.esm import EventSourceMappingRunner, InvokeResult, MappingConfig
from pipeline.local.esm.memory import MemoryStream
from pipeline.local.services import AwsServices
from pipeline.local.shard_source import SqsFailureSink

# Where the twin's Kinesis (pipeline/local/kinesis/) still differs from the recording, and why it
# stays (docs/fidelity.md). Strict: a case that starts matching fails here, so its entry goes.
KNOWN_KINESIS_DIFFERENCES: dict[str, str] = {
    "kinesis/subscribe_to_shard":
        "the twin's AWS endpoint has no SubscribeToShard (an HTTP/2 event stream; its mappings "
        "read enhanced fan-out in process)",
    "kinesis/subscribe_to_shard_with_sequence_number_as_iterator":
        "the twin's AWS endpoint has no SubscribeToShard",
    "kinesis/subscribe_to_shard_with_at_timestamp":
        "the twin's AWS endpoint has no SubscribeToShard",
}

CASES = list(load_cases())
DEADLINE_S = 10.0


def _param(case: Case) -> Any:
    marks: list[Any] = []
    if case.skip is not None:
        marks.append(pytest.mark.skip(reason=case.skip))
    elif case.id in KNOWN_KINESIS_DIFFERENCES:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_KINESIS_DIFFERENCES[case.id]))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def twin() -> Iterator[AwsServices]:
    with aws_services() as svc:
        yield svc


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
async def test_recorded_aws(case: Case, twin: AwsServices) -> None:
    scenario = case.data["scenario"]
    if scenario == "esm":
        actual = await _replay_esm(case, twin)
    else:
        actual = KINESIS_SCENARIOS[scenario](case, twin, _name(case))
    comparison = case.comparison()
    recorded = {k: v for k, v in case.recorded.items()
                if k not in case.data.get("not_replayed", {})}
    compare(recorded, actual, comparison)
    assert not comparison.differences, "\n".join([f"{case.id} differs from AWS:",
                                                 *comparison.differences])


def test_every_case_runs_or_says_why_not() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    for case in CASES:
        snapshot = case.source["snapshot"]
        assert snapshot["commit"] or snapshot["version"], case.id  # what exactly was read
        assert case.data.get("recorded_date") or case.data.get("last_validated"), case.id
        if case.skip is None:
            assert case.data["scenario"] in (*KINESIS_SCENARIOS, "esm"), case.id
            assert "request" in case.data, case.id
    running = {c.id for c in CASES if c.skip is None}
    assert set(KNOWN_KINESIS_DIFFERENCES) <= running  # xfails name cases that run


def test_comparator_catches_what_it_must() -> None:
    """The comparator is the oracle's eyes: it must see a missing null key, a broken
    placeholder binding and a wrong format."""
    case = next(c for c in CASES if c.id == "esm/kinesis_report_batch_item_failures")
    body = case.recorded["sqs_payload"]["Messages"][0]["Body"]
    good = {
        "requestContext": {"requestId": "0f8e2c9a-1111-4b2b-9c3d-0123456789ab",
                           "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": None},
        "version": "1.0", "timestamp": "2024-10-12T14:17:06.123Z",
        "KinesisBatchInfo": {"shardId": "shardId-000000000000", "startSequenceNumber": "4" * 56,
                             "endSequenceNumber": "4" * 56,
                             "approximateArrivalOfFirstRecord": "2024-10-12T14:17:01.000Z",
                             "approximateArrivalOfLastRecord": "2024-10-12T14:17:01.000Z",
                             "batchSize": 1,
                             "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}}

    def differences(mutate: Callable[[dict[str, Any]], None]) -> list[str]:
        actual = json.loads(json.dumps(good))
        mutate(actual)
        comparison = case.comparison()
        compare(body, actual, comparison)
        found: list[str] = comparison.differences
        return found

    assert differences(lambda m: None) == []
    assert differences(lambda m: m["responseContext"].pop("functionError"))
    assert differences(lambda m: m["responseContext"].update(functionError="Unhandled"))
    assert differences(lambda m: m["KinesisBatchInfo"].update(endSequenceNumber="5" * 56))
    assert differences(lambda m: m["KinesisBatchInfo"].update(startSequenceNumber="12",
                                                              endSequenceNumber="12"))
    assert differences(lambda m: m.update(timestamp="2024-10-12T14:17:06Z"))
    assert differences(lambda m: m["requestContext"].update(approximateInvokeCount=3))
    assert differences(lambda m: m["KinesisBatchInfo"].update(
        streamArn="arn:aws:kinesis:us-east-1:123456789012:stream/fn"))  # <resource:2> != :3


# --- Kinesis API -------------------------------------------------------------------------------


def _name(case: Case) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", case.id).strip("-")[:100]


def _kinesis(twin: AwsServices, **config: Any) -> Any:
    """A client that does not retry (a 500 is an answer here, not a blip)."""
    return boto3.client(
        "kinesis", endpoint_url=twin.url, region_name=REGION, aws_access_key_id="twin",
        aws_secret_access_key="twin",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=5, **config))


def _stream(kinesis: Any, name: str, **kw: Any) -> dict[str, Any]:
    kinesis.create_stream(StreamName=name, **kw)
    description: dict[str, Any] = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    return description


def _create_stream_without_shard_count(case: Case, twin: AwsServices, name: str) -> Any:
    shards = _stream(_kinesis(twin), name)["Shards"]
    return {"Shards": sorted(shards, key=lambda s: s["ShardId"])}


def _add_tags_to_stream(case: Case, twin: AwsServices, name: str) -> Any:
    kinesis = _kinesis(twin)
    _stream(kinesis, name, ShardCount=1)
    kinesis.add_tags_to_stream(StreamName=name, Tags={"foo": "bar"})
    tags = kinesis.list_tags_for_stream(StreamName=name)
    return {"Tags": tags["Tags"][0], "HasMoreTags": tags["HasMoreTags"]}


def _record_lifecycle_data_integrity(case: Case, twin: AwsServices, name: str) -> Any:
    kinesis = _kinesis(twin)
    shard = _stream(kinesis, name, ShardCount=1)["Shards"][0]
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=shard["SequenceNumberRange"]["StartingSequenceNumber"],
    )["ShardIterator"]
    for data in ("test", "\u00fcnic\u00f6d\u00e9 \u7edf\u4e00\u7801 \U0001f4a3\U0001f4bb\U0001f525",
                 "a" * 1000, ""):
        kinesis.put_record(StreamName=name, Data=data, PartitionKey="1")
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    return {"Records": sorted(records, key=lambda r: r["Data"])}


def _subscribe_to_shard(case: Case, twin: AwsServices, name: str) -> Any:
    kinesis = _kinesis(twin)
    description = _stream(kinesis, name, ShardCount=1)
    shard = description["Shards"][0]
    consumer = kinesis.register_stream_consumer(StreamARN=description["StreamARN"],
                                                ConsumerName="c1")["Consumer"]
    position = dict(case.data["request"][2]["SubscribeToShard"]["StartingPosition"])
    if position["Type"] == "AT_SEQUENCE_NUMBER":
        position["SequenceNumber"] = shard["SequenceNumberRange"]["StartingSequenceNumber"]
    if position["Type"] == "AT_TIMESTAMP":
        position["Timestamp"] = datetime.fromisoformat(position["Timestamp"])
    stream = kinesis.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"],
                                        ShardId=shard["ShardId"],
                                        StartingPosition=position)["EventStream"]
    for i in range(5):
        kinesis.put_records(StreamName=name,
                            Records=[{"Data": f"Hello world_{i}", "PartitionKey": "1"}])
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEADLINE_S
    for event in stream:
        records.extend(event["SubscribeToShardEvent"]["Records"])
        if len(records) >= 5 or time.monotonic() > deadline:
            break
    return {"Records": sorted(records, key=lambda r: r["Data"])}


def _stream_consumers(case: Case, twin: AwsServices, name: str) -> Any:
    kinesis = _kinesis(twin)
    stream_arn = _stream(kinesis, name, ShardCount=1)["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=stream_arn,
                                                ConsumerName="consumer")["Consumer"]
    listed = kinesis.list_stream_consumers(StreamARN=stream_arn)["Consumers"]
    described = kinesis.describe_stream_consumer(StreamARN=stream_arn,
                                                 ConsumerARN=consumer["ConsumerARN"])
    return {"One_consumer_by_list_stream": listed,
            "One_consumer_by_describe_stream": described["ConsumerDescription"]}


def _get_records_next_shard_iterator(case: Case, twin: AwsServices, name: str) -> Any:
    kinesis = _kinesis(twin)
    shard_id = _stream(kinesis, name, ShardCount=1)["Shards"][0]["ShardId"]
    first = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id,
                                       ShardIteratorType="LATEST")["ShardIterator"]
    second = kinesis.get_records(ShardIterator=first)["NextShardIterator"]
    third = kinesis.get_records(ShardIterator=second)["NextShardIterator"]
    return {"assert": {"iterators_distinct": len({first, second, third}) == 3}}


def _get_records_quoted_iterator(case: Case, twin: AwsServices, name: str) -> Any:
    kinesis = _kinesis(twin)
    shard_id = _stream(kinesis, name, ShardCount=1)["Shards"][0]["ShardId"]
    kinesis.put_records(StreamName=name, Records=[{"Data": b"Hello world", "PartitionKey": "1"}])
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=f'"{iterator}"')["Records"]
    return {"assert": {"records_returned": bool(records)}}


def _create_stream_without_stream_name(case: Case, twin: AwsServices, name: str) -> Any:
    kinesis = _kinesis(twin, parameter_validation=False)
    try:
        response = kinesis.create_stream()
    except ClientError as exc:
        response = exc.response
    return {"assert": {"HTTPStatusCode": response["ResponseMetadata"]["HTTPStatusCode"]}}


def _model_error(case: Case, twin: AwsServices, name: str) -> Any:
    """The error a call answers: its code (one of those expected) and HTTP status."""
    kinesis = _kinesis(twin)
    steps = case.data["request"]
    call = steps[-1]
    operation, params = next(iter(call.items()))
    params = json.loads(json.dumps(params).replace("<stream>", name).replace("<unknown>",
                                                                             f"{name}-unknown"))
    if "CreateStream" in steps[0]:
        shard_id = _stream(kinesis, name, ShardCount=1)["Shards"][0]["ShardId"]
        if params.get("ShardIterator") == "<iterator>":
            params["ShardIterator"] = kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard_id, ShardIteratorType="LATEST")["ShardIterator"]
    method = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
    try:
        response = getattr(kinesis, method)(**params)
    except ClientError as exc:
        response = exc.response
    code = response.get("Error", {}).get("Code")
    allowed = case.recorded["Error.Code in"]
    return {"Error.Code in": allowed if code in allowed else [f"{code} (not expected)"],
            "HTTPStatusCode": response["ResponseMetadata"]["HTTPStatusCode"]}


def _apigateway_to_kinesis(case: Case, twin: AwsServices, name: str) -> Any:
    """The integration path of a route with an AWS integration: render the request template
    with the client's body, call Kinesis in process, answer with Kinesis's response body."""
    kinesis = _kinesis(twin)
    shard_id = _stream(kinesis, name, ShardCount=1)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id,
                                          ShardIteratorType="LATEST")["ShardIterator"]
    steps = case.data["request"]
    template = steps[2]["integration"]["request_template"].replace("<stream>", name)
    client_body = json.dumps(steps[3]["client sends"])
    rendered = vtl.render(template, body=client_body, context={})
    response = twin.call_aws("kinesis", "PutRecord", rendered.encode(), None)
    assert response.status == 200, response
    records = kinesis.get_records(ShardIterator=iterator)
    return {"apigateway_response": json.loads(response.body), "kinesis_records": records}


KINESIS_SCENARIOS: dict[str, Callable[[Case, AwsServices, str], Any]] = {
    "create_stream_without_shard_count": _create_stream_without_shard_count,
    "add_tags_to_stream": _add_tags_to_stream,
    "record_lifecycle_data_integrity": _record_lifecycle_data_integrity,
    "subscribe_to_shard": _subscribe_to_shard,
    "stream_consumers": _stream_consumers,
    "get_records_next_shard_iterator": _get_records_next_shard_iterator,
    "get_records_quoted_iterator": _get_records_quoted_iterator,
    "create_stream_without_stream_name": _create_stream_without_stream_name,
    "apigateway_to_kinesis": _apigateway_to_kinesis,
    "model_error": _model_error,
}


# --- Lambda event source mappings ----------------------------------------------------------------

SENTINEL = b'{"sentinel": true}'


class _Recorder:
    """A function of the case (what LocalStack's test deployed), as the engine's invoker."""

    def __init__(self, spec: dict[str, Any], changed: asyncio.Event) -> None:
        self.spec = spec
        self.changed = changed
        self.events: list[tuple[float, dict[str, Any]]] = []

    async def invoke(self, function_name: str, event: dict[str, Any]) -> InvokeResult:
        self.events.append((time.time(), json.loads(json.dumps(event))))
        self.changed.set()
        if "raises" in self.spec:
            return InvokeResult(False, None, self.spec["raises"], "raised by the case's function")
        if "fails_where" in self.spec:
            wanted = self.spec["fails_where"]
            failed = [{"itemIdentifier": r["kinesis"]["sequenceNumber"]}
                      for r in event["Records"]
                      if _matches(base64.b64decode(r["kinesis"]["data"]), wanted)]
            return InvokeResult(True, {"batchItemFailures": failed})
        value = self.spec.get("returns")
        return InvokeResult(True, event if value == "event" else value)

    def invocations(self) -> int:
        """Invocations of the recorded records (the sentinel's left out)."""
        return len(self.seen(sentinel=False))

    def seen(self, sentinel: bool) -> list[tuple[float, dict[str, Any]]]:
        """Invocations, those carrying the sentinel record left out (or only those)."""
        return [(t, e) for t, e in self.events if _carries_sentinel(e) == sentinel]


def _matches(data: bytes, wanted: dict[str, Any]) -> bool:
    try:
        document = json.loads(data)
    except ValueError:
        return False
    return isinstance(document, dict) and all(document.get(k) == v for k, v in wanted.items())


def _carries_sentinel(event: dict[str, Any]) -> bool:
    return any(base64.b64decode(r["kinesis"]["data"]) == SENTINEL for r in event["Records"])


class _NotifyingSink:
    """The twin's SQS on-failure destination, counting what it sent."""

    def __init__(self, twin: AwsServices, changed: asyncio.Event) -> None:
        self._sqs = SqsFailureSink(twin)
        self.changed = changed
        self.sent = 0

    def send(self, destination_arn: str, message: dict[str, Any]) -> None:
        self._sqs.send(destination_arn, message)
        self.sent += 1
        self.changed.set()


async def _until(changed: asyncio.Event, predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        changed.clear()
        if predicate():
            return
        try:
            async with asyncio.timeout(left):
                await changed.wait()
        except TimeoutError:
            continue


async def _replay_esm(case: Case, twin: AwsServices) -> dict[str, Any]:
    request = case.data["request"]
    base = _name(case).replace("esm-", "")[:40]
    changed = asyncio.Event()
    stream = MemoryStream(name=f"s-{base}")
    queue_name = f"q-{base}"
    sqs = twin.client("sqs")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue_name}"
    sink = _NotifyingSink(twin, changed)
    functions = {key: _Recorder(spec, changed) for key, spec in request["functions"].items()}
    names = {key: f"{key}-{base}" for key in functions}
    runners: list[EventSourceMappingRunner] = []
    try:
        for step in request["steps"]:
            await _esm_step(step, stream, functions, names, queue_arn, sink, runners,
                            shared_role=bool(request.get("shared_role")), base=base)
        await _wait_for(request, functions, sink, changed)
        if request.get("sentinel"):
            # Newer records wait for retries of older ones: once the sentinel is delivered,
            # any retry of the recorded invocation would already have happened.
            only = next(iter(functions.values()))
            stream.put("test", SENTINEL)
            await _until(changed, lambda: bool(only.seen(sentinel=True)), "the sentinel record")
        return _replayed(case, functions, sqs, queue_url)
    finally:
        for runner in runners:
            await runner.stop()
        sqs.delete_queue(QueueUrl=queue_url)


async def _esm_step(
    step: dict[str, Any], stream: MemoryStream, functions: dict[str, _Recorder],
    names: dict[str, str], queue_arn: str, sink: _NotifyingSink,
    runners: list[EventSourceMappingRunner], *, shared_role: bool, base: str,
) -> None:
    if "PutRecords" in step or "PutRecord" in step:
        entries = step.get("PutRecords") or [step["PutRecord"]]
        for entry in entries:
            stream.put(entry["PartitionKey"], entry["Data"].encode())
        return
    properties = json.loads(json.dumps(step["CreateEventSourceMapping"]).replace(
        "<queue-arn>", queue_arn))
    key = properties["FunctionName"]
    properties.update(FunctionName=names[key], EventSourceArn=stream.stream_arn)
    role = f"role-{base}" if shared_role else f"{names[key]}-role"
    runner = EventSourceMappingRunner(
        MappingConfig.from_cfn(properties, logical_id=names[key]), stream, functions[key], sink,
        retry_backoff_s=0.001, invoke_identity_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{role}")
    await runner.start()
    runners.append(runner)


async def _wait_for(request: dict[str, Any], functions: dict[str, _Recorder],
                    sink: _NotifyingSink, changed: asyncio.Event) -> None:
    first = next(iter(functions))
    for condition, count in request["wait"].items():
        if condition == "dlq":
            await _until(changed, _at_least(lambda: sink.sent, count), "the on-failure message")
            continue
        key = condition.split(":", 1)[1] if ":" in condition else first
        await _until(changed, _at_least(functions[key].invocations, count),
                     f"{count} invocations of {key}")


def _at_least(value: Callable[[], int], count: int) -> Callable[[], bool]:
    return lambda: value() >= count


def _replayed(case: Case, functions: dict[str, _Recorder], sqs: Any,
              queue_url: str) -> dict[str, Any]:
    first = next(iter(functions))
    parts: dict[str, Any] = {}
    for part, how in case.data["replay"].items():
        kind, _, key = how.partition(":")
        recorder = functions[key or first]
        events = [e for _, e in recorder.seen(sentinel=False)]
        if kind == "first_event":
            parts[part] = events[0]
        elif kind == "events":
            parts[part] = events
        elif kind == "events_with_execution_start":
            parts[part] = [{"executionStart": t, "event": e}
                           for t, e in recorder.seen(sentinel=False)]
        elif kind == "flattened_by_partition_key":
            flat = [r for e in events for r in e["Records"]]
            parts[part] = {"Records": sorted(flat, key=lambda r: r["kinesis"]["partitionKey"])}
        elif kind == "logged_payload":
            parts[part] = json.dumps([json.loads(base64.b64decode(r["kinesis"]["data"]))
                                      for r in events[0]["Records"]])
        elif kind == "sqs_receive":
            received = sqs.receive_message(QueueUrl=queue_url)
            for message in received.get("Messages", []):
                message["Body"] = json.loads(message["Body"])
            parts[part] = received
        else:
            raise ValueError(f"{case.id}: unknown replay {how!r}")
    return parts


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"
