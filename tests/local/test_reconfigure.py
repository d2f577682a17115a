"""A changed ``settings.json`` re-synthesizes and reconfigures the running twin in place
(issue 25): the plan (pure), and a twin that answers a new route without a restart."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
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

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.cfn import Stack, load_template, resolve_stack
from pipeline.local.harness import PROJECT_ROOT, start_twin, stop_twin
from pipeline.local.iam.access import AccessControl, function_access_key, function_secret_key
from pipeline.local.iam.policy import PolicyDecision
from pipeline.local.reconfigure import FunctionChanges, function_changes, plan
from pipeline.local.workers import FunctionSpec

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


def _without(stack: Stack, consumer: str) -> Stack:
    """*stack* as if consumers/<consumer>/ had not been there."""
    prefix = f"Consumer{consumer}"
    return dataclasses.replace(stack, resources={
        lid: res for lid, res in stack.resources.items() if not lid.startswith(prefix)})


def test_a_new_consumer_is_created_in_place_and_a_removed_one_deleted(
        cloud_assembly: Path) -> None:
    full = _stack(cloud_assembly)
    without = _without(full, "echo")
    added = plan(without, full, (), ("echo",))
    assert not added.restart and added.routes_added == ("echo",)
    assert {full.resources[lid].type for lid in added.created} == {
        "AWS::Lambda::Function", "AWS::Kinesis::StreamConsumer", "AWS::SQS::Queue"}
    assert all(lid.startswith("Consumerecho") for lid in added.created)
    assert [c.logical_id for c in added.added] == [_echo_mapping(full)]
    assert added.added[0].role  # the identity the new mapping invokes with

    removed = plan(full, without, ("echo",), ())
    assert {full.resources[lid].type for lid in removed.deleted} == {
        "AWS::Lambda::Function", "AWS::Kinesis::StreamConsumer"}  # the queue keeps its messages
    assert removed.removed == (_echo_mapping(full),) and removed.routes_removed == ("echo",)
    # the console names them as people do
    function = added.added[0].config.function_name.rsplit(":", 1)[-1]
    assert added.summary({function: "echo"}) == "routes added echo; mappings added echo"
    assert removed.summary({_echo_mapping(full): "echo"}) == (
        "routes removed echo; mappings removed echo")


def test_a_new_stream_needs_a_restart(cloud_assembly: Path) -> None:
    running, new = _stack(cloud_assembly), _stack(cloud_assembly)
    (stream,) = new.of_type("AWS::Kinesis::Stream")
    new.resources["SecondStream"] = copy.copy(stream)
    change = plan(running, new, (), ())
    assert change.restart == ("AWS::Kinesis::Stream SecondStream",) and change.empty


def test_function_changes_compare_configuration_not_assembly_paths(tmp_path: Path) -> None:
    old_dir, new_dir = tmp_path / "a", tmp_path / "b"
    spec = FunctionSpec(name="Fn", arn="arn:aws:lambda:us-east-1:1:function:Fn",
                        handler="handler.lambda_handler", code_dir=old_dir / "asset.1",
                        layer_dirs=(PROJECT_ROOT, old_dir / "asset.2" / "python"),
                        environment={"CLIENT_ROUTES": "echo"}, label="fallback")
    same = dataclasses.replace(spec, code_dir=new_dir / "asset.1",
                               layer_dirs=(PROJECT_ROOT, new_dir / "asset.2" / "python"))
    assert function_changes([spec], [same], old_dir, new_dir) == FunctionChanges()
    routes = dataclasses.replace(same, environment={"CLIENT_ROUTES": "echo,greet"},
                                 timeout_s=9.0)
    gone = dataclasses.replace(spec, name="Gone", label="gone")
    changes = function_changes([spec, gone], [routes], old_dir, new_dir)
    assert changes.updated == ((routes, ("environment", "timeout")),)
    assert changes.removed == (gone,) and not changes.added
    assert changes.summary() == ("functions removed gone; "
                                 "functions updated fallback (environment, timeout)")


def test_access_control_takes_a_new_stacks_roles_and_functions(cloud_assembly: Path) -> None:
    full = _stack(cloud_assembly)
    (echo,) = [f for f in full.of_type("AWS::Lambda::Function")
               if f.logical_id.startswith("ConsumerechoFunction")]
    key = function_access_key(echo.ref)
    access = AccessControl.from_stack(_without(full, "echo"))
    assert access.caller(key) is None
    role = str(echo.properties["Role"])
    (api,) = full.of_type("AWS::ApiGatewayV2::Api")
    post = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api.ref}/dev/POST/@connections/abc="
    manage = "execute-api:ManageConnections"
    assert access.decide(role, manage, post) is PolicyDecision.IMPLICIT_DENY  # and cached
    access.update(AccessControl.from_stack(full))
    caller = access.caller(key)
    assert caller is not None and caller.role_arn == role
    assert access.secret_key(key) == function_secret_key(echo.ref)
    assert access.decide(role, manage, post) is PolicyDecision.ALLOW


@pytest.mark.synth
@pytest.mark.twin
@pytest.mark.timeout(300)
def _synthesized_copy(tmp_path: Path, assembly: Path) -> Path:
    """A copy of the project (its consumers the test's to change) with the session's cdk.out
    (the same sources synthesized: the copy's own synth took 10-25 s per test)."""
    project = copy_project(tmp_path / "project")
    if (PROJECT_ROOT / ".build").is_dir():  # the layer cache is keyed by content: share it
        (project / ".build").symlink_to(PROJECT_ROOT / ".build")
    shutil.copytree(assembly, project / "cdk.out", symlinks=True)
    return project


async def test_a_new_route_in_settings_answers_without_a_restart(
        tmp_path: Path, cloud_assembly: Path) -> None:
    project = _synthesized_copy(tmp_path, cloud_assembly)
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
            # the fallback's environment was re-read: its CLIENT_ROUTES names the new route
            await a.send('{"action":"teleport"}')
            assert "shout" in (await _recv(a))["routes"]
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


@pytest.mark.synth
@pytest.mark.twin
@pytest.mark.timeout(420)
async def test_a_new_consumer_folder_answers_and_a_removed_one_is_gone(
        tmp_path: Path, cloud_assembly: Path) -> None:
    project = _synthesized_copy(tmp_path, cloud_assembly)
    twin = start_twin(project / "cdk.out", cwd=project)
    try:
        async with websockets.connect(twin.ws, open_timeout=TIMEOUT_S) as ws:
            await ws.send('{"action":"greet","data":1}')
            before = await _recv(ws)
            assert before["error"] == "unknown_action" and "greet" not in before["routes"]

            _pipeline(project, "new-consumer", "greet", "--route", "greet")
            await until(lambda: len(_lines(twin.lines(), "reload: template applied")) == 1,
                        RESYNTH_S, poll=0.1)
            assert _lines(twin.lines(), "reload: new consumer greet: re-synthesizing")
            (line,) = _lines(twin.lines(), "reload: template applied")
            assert "functions added greet" in line and "routes added greet" in line
            assert "fallback (environment" in line and "mappings added greet" in line
            await ws.send('{"action":"greet","data":2}')
            assert await _recv(ws) == {"action": "greet", "ok": True, "data": 2}
            await ws.send('{"action":"teleport"}')  # the fallback's environment was re-read
            assert "greet" in (await _recv(ws))["routes"]
            pool = _workers_of(twin.process.pid, "greet")
            assert pool  # its warm worker

            _pipeline(project, "remove-consumer", "greet")
            await until(lambda: len(_lines(twin.lines(), "reload: template applied")) == 2,
                        RESYNTH_S, poll=0.1)
            line = _lines(twin.lines(), "reload: template applied")[1]
            assert "functions removed greet" in line and "routes removed greet" in line
            assert "mappings removed greet" in line
            assert not [pid for pid in pool if Path(f"/proc/{pid}").exists()]
            await ws.send('{"action":"greet","data":3}')  # $default -> fallback, as before
            after = await _recv(ws)
            assert after["error"] == "unknown_action" and after["received"] == "greet"
            assert "greet" not in after["routes"] and "echo" in after["routes"]

            # back under the same name: its stream consumer was deregistered, its queue kept
            _pipeline(project, "new-consumer", "greet", "--route", "greet")
            await until(lambda: len(_lines(twin.lines(), "reload: template applied")) == 3,
                        RESYNTH_S, poll=0.1)
            await ws.send('{"action":"greet","data":4}')
            assert await _recv(ws) == {"action": "greet", "ok": True, "data": 4}
    finally:
        stop_twin(twin)
    assert not _lines(twin.lines(), "not applied")
    assert "Traceback" not in "".join(twin.lines())


def _pipeline(project: Path, *argv: str) -> None:
    """``python -m pipeline ARGV`` in the project copy (as a user types it)."""
    done = subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=project,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _workers_of(twin_pid: int, service: str) -> set[int]:
    """The twin's worker processes of one consumer (POWERTOOLS_SERVICE_NAME in their env)."""
    wanted = f"POWERTOOLS_SERVICE_NAME={service}".encode()
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (proc / "environ").read_bytes().split(b"\0") if parent == twin_pid else []
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile, or not ours to read
        if wanted in environ:
            pids.add(int(proc.name))
    return pids
