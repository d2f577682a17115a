"""A changed ``settings.json`` re-synthesizes and reconfigures the running twin in place
(issue 25): the plan (pure), and a twin that answers a new route without a restart."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets
from frames import next_reply
from polling import until
from test_scaffold import copy_project

from pipeline.aws.limits import REGION
from pipeline.local.cfn import Stack, load_template, resolve_stack
from pipeline.local.harness import PROJECT_ROOT, start_twin, stop_twin
from pipeline.local.reconfigure import plan

STACK = "WebSocketPipeline-dev"
TIMEOUT_S = 15.0
RESYNTH_S = 120.0  # a synth: ~10 s idle, ~25 s on a busy 2-core machine


def _stack(assembly: Path) -> Stack:
    return resolve_stack(load_template(assembly, STACK), STACK, assembly, created=1)


def _echo_mapping(stack: Stack) -> str:
    (lid,) = [r.logical_id for r in stack.of_type("AWS::Lambda::EventSourceMapping")
              if r.logical_id.startswith("ConsumerechoFunction")]
    return lid


def test_a_filter_or_batch_change_updates_the_mapping_in_place(cloud_assembly: Path) -> None:
    running, new = _stack(cloud_assembly), _stack(cloud_assembly)
    assert plan(running, new, ("echo",), ("echo",)).empty
    lid = _echo_mapping(new)
    props = new.resources[lid].properties
    props["FilterCriteria"] = {"Filters": [{"Pattern": '{"data": {"routeKey": ["echo", "shout"]}}'}]}
    props["BatchSize"] = 7
    change = plan(running, new, ("echo",), ("echo", "shout"))
    assert change.routes_added == ("shout",) and not change.routes_removed
    assert [c.logical_id for c in change.updated] == [lid] and change.updated[0].config.batch_size == 7
    assert not (change.added or change.replaced or change.removed or change.restart)


def test_a_new_position_replaces_and_a_removed_mapping_stops(cloud_assembly: Path) -> None:
    running, new = _stack(cloud_assembly), _stack(cloud_assembly)
    lid = _echo_mapping(new)
    new.resources[lid].properties["ParallelizationFactor"] = 2
    others = [r.logical_id for r in new.of_type("AWS::Lambda::EventSourceMapping") if r.logical_id != lid]
    del new.resources[others[0]]
    change = plan(running, new, (), ())
    assert [c.logical_id for c in change.replaced] == [lid]
    assert change.removed == (others[0],) and not change.updated


def test_a_new_function_needs_a_restart(cloud_assembly: Path) -> None:
    running, new = _stack(cloud_assembly), _stack(cloud_assembly)
    (function,) = [r for r in new.of_type("AWS::Lambda::Function")][:1]
    new.resources["NewFunction"] = copy.copy(function)
    change = plan(running, new, (), ("brand-new",))
    assert change.restart == ("AWS::Lambda::Function NewFunction",) and change.empty


@pytest.mark.synth
@pytest.mark.twin
@pytest.mark.timeout(300)
async def test_a_new_route_in_settings_answers_without_a_restart(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    if (PROJECT_ROOT / ".build").is_dir():  # the layer cache is keyed by content: share it
        (project / ".build").symlink_to(PROJECT_ROOT / ".build")
    code = ("import sys; from pathlib import Path; from pipeline.infrastructure.synth import "
            "synthesize; synthesize(Path(sys.argv[1]), {'stage': 'dev'})")
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    synth = subprocess.run([sys.executable, "-c", code, str(project / "cdk.out")], cwd=project,
                           env=env, capture_output=True, text=True, timeout=180)
    assert synth.returncode == 0, synth.stderr[-3000:]
    twin = start_twin(project / "cdk.out", cwd=project)
    try:
        kinesis: Any = boto3.client("kinesis", endpoint_url=twin.aws, region_name=REGION,
                                    aws_access_key_id="x", aws_secret_access_key="x")
        (stream,) = kinesis.list_streams()["StreamNames"]
        put = kinesis.put_record(StreamName=stream, PartitionKey="before", Data=b"kept")
        async with websockets.connect(twin.ws, open_timeout=TIMEOUT_S) as a, \
                websockets.connect(twin.ws, open_timeout=TIMEOUT_S) as b:
            for ws in (a, b):
                await ws.send('{"action":"join","room":"r"}')
                assert await _recv(ws) == {"action": "joined", "room": "r"}
            await a.send('{"action":"shout","data":1}')
            assert (await _recv(a))["error"] == "unknown_action"  # $default -> fallback

            settings = project / "consumers" / "echo" / "settings.json"
            spec = json.loads(settings.read_text())
            settings.write_text(json.dumps({**spec, "routes": ["echo", "shout"]}, indent=2))
            await until(lambda: bool(_lines(twin.lines(), "reload: template applied")), RESYNTH_S,
                        poll=0.1)
            (line,) = _lines(twin.lines(), "reload: template applied")
            assert "routes added shout" in line and "mappings updated" in line

            await a.send('{"action":"shout","data":2}')
            reply = await _recv(a)
            assert reply["action"] == "echo" and reply["data"] == 2
            await a.send('{"action":"echo","data":3}')  # the old route still answers
            assert (await _recv(a))["data"] == 3
            await a.send('{"action":"send","room":"r","text":"still here"}')  # rooms kept
            message = await _recv(b)
            assert message["action"] == "message" and message["text"] == "still here"
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=put["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=put["SequenceNumber"])["ShardIterator"]
        assert kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"][0]["Data"] == b"kept"
    finally:
        stop_twin(twin)
    assert not _lines(twin.lines(), "not applied")


async def _recv(ws: Any) -> Any:
    return await next_reply(ws, TIMEOUT_S)


def _lines(output: Any, text: str) -> list[str]:
    return [line for line in list(output) if text in line]
