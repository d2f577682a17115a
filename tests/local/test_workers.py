"""Lambda workers with tiny handlers written to temporary directories."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pipeline.local.workers import FunctionSpec, WorkerError, Workers, rewrite_environment

HANDLER = """
import os, sys, time
import shared_lib

def lambda_handler(event, context):
    action = event.get("do")
    print("noise on stdout must not break the pipe")
    if action == "raise":
        raise ValueError("bad thing")
    if action == "sleep":
        time.sleep(event["s"])
    if action == "exit":
        os._exit(3)
    if action == "unserializable":
        return {1, 2}
    return {
        "event": event,
        "env": {k: os.environ.get(k) for k in ("ONLY_A", "ONLY_B", "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_ENDPOINT_URL", "_HANDLER", "AWS_REGION", "AWS_LAMBDA_FUNCTION_TIMEOUT")},
        "ctx": [context.aws_request_id, context.function_name, context.invoked_function_arn,
                context.memory_limit_in_mb, context.get_remaining_time_in_millis()],
        "lib": shared_lib.WHERE,
        "pid": os.getpid(),
    }
"""


def _function(tmp: Path, name: str, env: dict[str, str], timeout: float = 5.0) -> FunctionSpec:
    code = tmp / name
    code.mkdir()
    (code / "handler.py").write_text(textwrap.dedent(HANDLER))
    layer = tmp / f"{name}-layer" / "python"
    layer.mkdir(parents=True)
    (layer / "shared_lib.py").write_text("WHERE = 'layer'\n")
    return FunctionSpec(
        name=name, arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        handler="handler.lambda_handler", code_dir=code, layer_dirs=(layer,),
        environment=env, timeout_s=timeout, memory_mb=256,
    )


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Workers]:
    specs = [
        _function(tmp_path, "fa", {"ONLY_A": "a"}),
        _function(tmp_path, "fb", {"ONLY_B": "b"}, timeout=1.0),
    ]
    running = Workers(specs, "http://127.0.0.1:1")
    await running.start()
    yield running
    await running.stop()


async def test_invoke_returns_payload_env_and_context(workers: Workers) -> None:
    result = await workers.invoke("fa", {"x": [1, "two"]})
    assert result.ok, result
    out = result.payload
    assert out["event"] == {"x": [1, "two"]}
    assert out["env"] == {"ONLY_A": "a", "ONLY_B": None, "AWS_LAMBDA_FUNCTION_NAME": "fa",
                          "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
                          "_HANDLER": "handler.lambda_handler", "AWS_REGION": "us-east-1",
                          "AWS_LAMBDA_FUNCTION_TIMEOUT": "5"}
    request_id, name, arn, memory, remaining = out["ctx"]
    assert len(request_id) == 36 and name == "fa" and arn.endswith(":function:fa")
    assert memory == 256 and 0 < remaining <= 5000
    assert out["lib"] == "layer"
    # env isolation: the other function sees only its own variables, and the twin's are absent
    other = (await workers.invoke("arn:aws:lambda:us-east-1:123456789012:function:fb", {})).payload
    assert other["env"]["ONLY_B"] == "b" and other["env"]["ONLY_A"] is None
    assert other["pid"] != out["pid"]


async def test_worker_stays_warm(workers: Workers) -> None:
    first = await workers.invoke("fa", {})
    second = await workers.invoke("fa", {})
    assert first.payload["pid"] == second.payload["pid"]


async def test_exception_has_lambda_error_shape(workers: Workers) -> None:
    result = await workers.invoke("fa", {"do": "raise"})
    assert not result.ok
    assert result.error_type == "ValueError" and result.error_message == "bad thing"
    assert set(result.payload) == {"errorMessage", "errorType", "stackTrace"}
    assert any("handler.py" in line for line in result.payload["stackTrace"])


async def test_unserializable_result_is_a_marshal_error(workers: Workers) -> None:
    result = await workers.invoke("fa", {"do": "unserializable"})
    assert not result.ok and result.error_type == "Runtime.MarshalError"


async def test_timeout_kills_and_respawns(workers: Workers) -> None:
    before = (await workers.invoke("fb", {})).payload["pid"]
    result = await workers.invoke("fb", {"do": "sleep", "s": 30})
    assert not result.ok and result.error_type == "Sandbox.Timedout"
    assert result.error_message is not None
    assert result.error_message.endswith("Task timed out after 1.00 seconds")
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)
    after = await workers.invoke("fb", {})
    assert after.ok and after.payload["pid"] != before


async def test_crash_is_exit_error_and_respawns(workers: Workers) -> None:
    result = await workers.invoke("fa", {"do": "exit"})
    assert not result.ok and result.error_type == "Runtime.ExitError"
    assert result.error_message is not None and "exit status 3" in result.error_message
    assert (await workers.invoke("fa", {"ok": 1})).ok


async def test_unknown_function_and_import_error(workers: Workers, tmp_path: Path) -> None:
    with pytest.raises(WorkerError, match="Function not found: nope"):
        await workers.invoke("nope", {})
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "handler.py").write_text("import does_not_exist\n")
    spec = FunctionSpec(name="broken", arn="arn:x:broken", handler="handler.lambda_handler",
                        code_dir=broken)
    pool = Workers([spec], "http://127.0.0.1:1")
    try:
        result = await pool.invoke("broken", {})
        assert not result.ok and result.error_type == "Runtime.ImportModuleError"
        assert result.error_message is not None
        assert "Unable to import module 'handler'" in result.error_message
    finally:
        await pool.stop()


def test_connections_endpoint_is_rewritten() -> None:
    env = rewrite_environment(
        {"CONNECTIONS_ENDPOINT_URL": "https://abc123defg.execute-api.us-east-1.amazonaws.com/dev",
         "OTHER": "https://example.com/dev", "N": 3},
        connections_url="http://127.0.0.1:8080/dev",
    )
    assert env == {"CONNECTIONS_ENDPOINT_URL": "http://127.0.0.1:8080/dev",
                   "OTHER": "https://example.com/dev", "N": "3"}


async def test_event_keys_and_unserializable_events(workers: Workers) -> None:
    class Key(str):
        """Like multidict's istr: a str subclass as a header name."""

    result = await workers.invoke("fa", {Key("Host"): "h", 1: "one"})  # type: ignore[dict-item]
    assert result.ok and result.payload["event"] == {"Host": "h", "1": "one"}
    bad = await workers.invoke("fa", {"x": {1, 2}})
    assert not bad.ok and bad.error_type == "InvalidRequestContentException"
    assert (await workers.invoke("fa", {})).ok  # the worker is still usable


@pytest.mark.synth
def test_concurrency_follows_parallelization_factor_times_shards(prod_assembly: Path) -> None:
    """Lambda runs up to ParallelizationFactor concurrent batches per shard
    (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html): the prod
    stack has 4 shards and PF 1, so every consumer may run 4 invocations at once."""
    from pipeline.local.cfn import load_template, resolve_stack
    from pipeline.local.workers import function_specs, mapping_concurrency

    template = load_template(prod_assembly, "WebSocketPipeline-prod")
    stack = resolve_stack(template, "WebSocketPipeline-prod", prod_assembly)
    wanted = mapping_concurrency(stack)
    consumers = [f for f in function_specs(stack, connections_url="http://x/prod")
                 if f.name in wanted]
    assert len(consumers) == 6
    # prod: 4 shards; ParallelizationFactor 1, and 5 for the fan-out tier (4 x 5 = 20, capped
    # at MAX_CONCURRENCY processes on one machine)
    from pipeline.local.workers import MAX_CONCURRENCY

    assert sorted(f.max_concurrency for f in consumers) == [4, 4, 4, 4, 4,
                                                            min(20, MAX_CONCURRENCY)]
    assert Workers(consumers, "http://x").pool(consumers[0].name).max_concurrency == 4


async def test_function_logs_go_to_their_own_file(tmp_path: Path) -> None:
    """``--function-logs DIR``: each function's output in DIR/<name>.log, like a CloudWatch
    log group per function, so the twin's terminal stays readable."""
    import dataclasses

    log = tmp_path / "logs" / "fa.log"
    spec = dataclasses.replace(_function(tmp_path, "fa", {}), log_file=log)
    running = Workers([spec], "http://127.0.0.1:1")
    await running.start()
    try:
        result = await running.invoke("fa", {"do": "ok"})
        assert result.ok
    finally:
        await running.stop()
    assert "noise on stdout must not break the pipe" in log.read_text()


async def test_cancelled_invocation_does_not_leave_its_worker_running(tmp_path: Path) -> None:
    # The ESM runner's stop() cancels an in-flight invocation: its worker (mid-request, so
    # never reusable) must be killed, not dropped from the pool and left running.
    running = Workers([_function(tmp_path, "fc", {}, timeout=30.0)], "http://127.0.0.1:1")
    await running.start()
    try:
        pid = (await running.invoke("fc", {})).payload["pid"]  # the one warm worker
        task = asyncio.create_task(running.invoke("fc", {"do": "sleep", "s": 20}))
        pool = running.pool("fc")
        deadline = asyncio.get_running_loop().time() + 5
        while pool._idle and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert not pool._idle  # the warm worker took the request
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await running.stop()
    assert not _alive(pid), "the cancelled invocation's worker is still running"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _tiny(tmp: Path, name: str, source: str, log: Path | None = None) -> FunctionSpec:
    code = tmp / name
    code.mkdir(exist_ok=True)
    (code / "handler.py").write_text(textwrap.dedent(source))
    return FunctionSpec(name=name, arn=f"arn:x:{name}", handler="handler.lambda_handler",
                        code_dir=code, log_file=log)


async def test_import_error_is_reported_as_aws_does_with_a_console_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler importing a missing module: ``Runtime.ImportModuleError`` with the runtime's
    message, one console line naming file and line, the traceback in the function's log."""
    log = tmp_path / "logs" / "broken.log"
    spec = _tiny(tmp_path, "broken", "import json\nimport does_not_exist\n", log)
    pool = Workers([spec], "http://127.0.0.1:1")
    try:
        await pool.start()
        result = await pool.invoke("broken", {})
        assert not result.ok and result.error_type == "Runtime.ImportModuleError"
        assert result.error_message == (
            "Unable to import module 'handler': No module named 'does_not_exist'")
        assert set(result.payload) == {"errorMessage", "errorType", "stackTrace"}
        await pool.invoke("broken", {})
    finally:
        await pool.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.local.workers"]
    assert len(lines) == 1, lines  # once, not once per worker or per invocation
    assert lines[0].startswith("broken: Runtime.ImportModuleError: ")
    assert "broken/handler.py:2: Unable to import module 'handler'" in lines[0]
    assert "traceback in" in lines[0] and "broken.log" in lines[0]
    text = log.read_text()
    assert "[ERROR] Runtime.ImportModuleError: Unable to import module 'handler'" in text
    assert "Traceback (most recent call last)" in text and "line 2" in text


async def test_syntax_error_is_a_user_code_syntax_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _tiny(tmp_path, "typo", "def lambda_handler(event, context)\n    return 1\n")
    pool = Workers([spec], "http://127.0.0.1:1")
    try:
        result = await pool.invoke("typo", {})
    finally:
        await pool.stop()
    assert not result.ok and result.error_type == "Runtime.UserCodeSyntaxError"
    assert result.error_message is not None
    assert result.error_message.startswith("Syntax error in module 'handler': ")
    line = next(r.getMessage() for r in caplog.records if r.name == "pipeline.local.workers")
    assert "typo/handler.py:1: Syntax error in module 'handler'" in line


async def test_reload_runs_the_new_code_and_reports_a_broken_import_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _tiny(tmp_path, "hot", "def lambda_handler(event, context):\n    return 1\n")
    handler = spec.code_dir / "handler.py"
    pool = Workers([spec], "http://127.0.0.1:1")
    try:
        await pool.start()
        assert (await pool.invoke("hot", {})).payload == 1
        handler.write_text("def lambda_handler(event, context):\n    return 2\n")
        await pool.reload("hot")
        assert (await pool.invoke("hot", {})).payload == 2
        handler.write_text("import nope\n")
        await pool.reload("hot")
        assert len([r for r in caplog.records if "ImportModuleError" in r.getMessage()]) == 1
        assert (await pool.invoke("hot", {})).error_type == "Runtime.ImportModuleError"
        handler.write_text("import nope\n")  # the same error after the next reload: said again
        await pool.reload("hot")
        assert len([r for r in caplog.records if "ImportModuleError" in r.getMessage()]) == 2
        handler.write_text("def lambda_handler(event, context):\n    return 3\n")
        await pool.reload("hot")
        assert (await pool.invoke("hot", {})).payload == 3
    finally:
        await pool.stop()


async def test_a_worker_busy_during_a_reload_is_not_reused(tmp_path: Path) -> None:
    spec = _tiny(tmp_path, "slow", "import time\n\ndef lambda_handler(event, context):\n"
                                   "    time.sleep(event['s'])\n    return 'old'\n")
    pool = Workers([spec], "http://127.0.0.1:1", max_concurrency=1)
    try:
        await pool.start()
        busy = asyncio.ensure_future(pool.invoke("slow", {"s": 0.5}))
        await asyncio.sleep(0)  # one step of the task: it takes the warm worker, no waiting
        (spec.code_dir / "handler.py").write_text(
            "def lambda_handler(event, context):\n    return 'new'\n")
        await pool.reload("slow")
        assert (await busy).payload == "old"  # the invocation in flight finishes on the old code
        assert (await pool.invoke("slow", {"s": 0})).payload == "new"
    finally:
        await pool.stop()
