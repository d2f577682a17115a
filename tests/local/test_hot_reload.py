"""Hot reload on a running twin (issue 25): an edited handler answers without a restart; a
broken import is reported as AWS reports it; the stream, the roster and rooms are kept."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets
from frames import next_reply
from polling import until

from pipeline.aws.limits import REGION
from pipeline.local.harness import PROJECT_ROOT, TwinProcess, start_twin, stop_twin
from pipeline.local.reload import Reloader, changes, snapshot, source_folders

TIMEOUT_S = 15.0
RELOAD_S = 10.0  # ~1 s on an idle machine; generous for a busy 2-core one


def test_changes_between_snapshots(tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text("a = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"x")
    before = snapshot(tmp_path)
    assert list(before) == ["handler.py"]
    (tmp_path / "handler.py").write_text("a = 22\n")
    (tmp_path / "util.py").write_text("")
    assert changes(before, snapshot(tmp_path)) == ["handler.py", "util.py"]
    (tmp_path / "util.py").unlink()
    assert changes(before, snapshot(tmp_path)) == ["handler.py"]


def test_only_consumer_functions_run_from_their_folders(tmp_path: Path) -> None:
    for name in ("echo", "half"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "handler.py").write_text("")
    (tmp_path / "echo" / "settings.json").write_text("{}")
    folders = source_folders([("Fn1", "echo"), ("Fn2", "half"), ("Fn3", "ConnectAuth")],
                             tmp_path)
    assert list(folders) == ["Fn1"] and folders["Fn1"].path == (tmp_path / "echo").resolve()


class _Pools:
    """What the reloader reloads, recorded."""

    def __init__(self) -> None:
        self.reloaded: list[str] = []

    async def reload(self, function: str, code_dir: Path | None = None) -> None:
        self.reloaded.append(function)


def _consumer(consumers: Path, name: str) -> None:
    (consumers / name).mkdir()
    (consumers / name / "handler.py").write_text("")
    (consumers / name / "settings.json").write_text("{}")


async def test_folders_added_and_removed_change_the_template_and_the_watch(
        tmp_path: Path) -> None:
    for name in ("echo", "greet"):
        _consumer(tmp_path, name)
    pools, template, said = _Pools(), [], []
    reloader = Reloader(pools, source_folders([("Fn1", "echo"), ("Fn2", "greet")], tmp_path),
                        tmp_path, say=said.append, on_template_change=template.append)
    await reloader.start()
    await reloader.stop()  # polled by hand below
    shutil.rmtree(tmp_path / "greet")
    await reloader.check()
    # its files are gone, but there is nothing to reload: the template drops it
    assert template == ["consumer greet removed"] and pools.reloaded == [] and said == []

    _consumer(tmp_path, "hello")
    await reloader.check()
    assert template[1:] == ["new consumer hello"]
    # the re-synthesized template is applied: the twin watches what runs now
    reloader.watch(source_folders([("Fn1", "echo"), ("Fn3", "hello")], tmp_path))
    await reloader.check()
    assert pools.reloaded == [] and len(template) == 2  # its files as they were: seen
    (tmp_path / "hello" / "handler.py").write_text("x = 1\n")
    await reloader.check()
    assert pools.reloaded == ["Fn3"] and said == [f"reload: hello reloaded ({tmp_path / 'hello'}"
                                                  "/handler.py)"]


@pytest.fixture
def consumers(tmp_path: Path) -> Path:
    """A copy of consumers/ the test may edit."""
    copy = tmp_path / "consumers"
    shutil.copytree(PROJECT_ROOT / "consumers", copy,
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    return copy


@pytest.fixture
def reloading_twin(cloud_assembly: Path, consumers: Path) -> Iterator[TwinProcess]:
    running = start_twin(cloud_assembly, "--consumers-dir", str(consumers))
    yield running
    stop_twin(running)


def _kinesis(twin: TwinProcess) -> Any:
    return boto3.client("kinesis", endpoint_url=twin.aws, region_name=REGION,
                        aws_access_key_id="x", aws_secret_access_key="x")


async def _recv(ws: Any) -> Any:
    return await next_reply(ws, TIMEOUT_S)


def _lines(twin: TwinProcess, text: str) -> list[str]:
    return [line for line in twin.lines() if text in line]


@pytest.mark.twin
@pytest.mark.synth
async def test_an_edited_handler_answers_without_a_restart(
    reloading_twin: TwinProcess, consumers: Path
) -> None:
    twin = reloading_twin
    assert _lines(twin, "hot reload ")  # the banner says it is on
    kinesis = _kinesis(twin)
    (stream,) = kinesis.list_streams()["StreamNames"]
    put = kinesis.put_record(StreamName=stream, PartitionKey="before-the-reload", Data=b"kept")
    handler = consumers / "echo" / "handler.py"
    original = handler.read_text()
    async with websockets.connect(twin.ws, open_timeout=TIMEOUT_S) as a, \
            websockets.connect(twin.ws, open_timeout=TIMEOUT_S) as b:
        for ws in (a, b):
            await ws.send('{"action":"join","room":"hot"}')
            assert await _recv(ws) == {"action": "joined", "room": "hot"}
        await a.send('{"action":"echo","data":1}')
        assert "reloaded" not in await _recv(a)

        # a broken import: AWS's error, one console line with file and line, the traceback
        handler.write_text(original + "import does_not_exist\n")
        broken_line = len(original.splitlines()) + 1
        await until(lambda: bool(_lines(twin, "echo: Runtime.ImportModuleError: ")), RELOAD_S)
        (line,) = _lines(twin, "echo: Runtime.ImportModuleError: ")
        assert f"echo/handler.py:{broken_line}: Unable to import module 'handler': No module named " \
               "'does_not_exist'" in line
        assert _lines(twin, "[ERROR] Runtime.ImportModuleError: Unable to import module")
        assert any(f'File "{handler.resolve()}", line {broken_line}' in x for x in twin.lines())

        # fixed and changed: the next invocation runs the new code, on the same connections
        handler.write_text(original.replace('"action": "echo",', '"action": "echo", '
                                            '"reloaded": True,'))
        await until(lambda: len(_lines(twin, "reload: echo reloaded")) == 2, RELOAD_S)
        await a.send('{"action":"echo","data":2}')
        reply = await _recv(a)
        assert reply["data"] == 2 and reply["reloaded"] is True
        # rooms and the roster were kept
        await a.send('{"action":"send","room":"hot","text":"still here"}')
        message = await _recv(b)
        assert message["action"] == "message" and message["text"] == "still here"
    # a record put before the reload is still on the stream
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=put["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=put["SequenceNumber"])["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"]
    assert records[0]["Data"] == b"kept"
    assert "Traceback" not in "".join(x for x in twin.lines() if "pipeline.local" in x)


@pytest.mark.twin
@pytest.mark.synth
async def test_settings_and_new_folders_are_reported_not_applied(
    reloading_twin: TwinProcess, consumers: Path
) -> None:
    settings = consumers / "echo" / "settings.json"
    settings.write_text(settings.read_text() + "\n")
    await until(lambda: bool(_lines(reloading_twin, "echo/settings.json changed")), RELOAD_S)
    shutil.copytree(consumers / "echo", consumers / "echo2")
    await until(lambda: bool(_lines(reloading_twin, "new consumer echo2: restart")), RELOAD_S)
    assert not _lines(reloading_twin, "reload: echo reloaded")


@pytest.mark.twin
@pytest.mark.synth
async def test_tracebacks_name_the_checkouts_runtime_files(
    reloading_twin: TwinProcess, consumers: Path
) -> None:
    twin = reloading_twin
    handler = consumers / "echo" / "handler.py"
    handler.write_text(handler.read_text().replace(
        "    frame = record.body_object() or {}\n",
        "    frame = record.body_object() or {}\n    raise RuntimeError('boom in echo')\n", 1))
    await until(lambda: bool(_lines(twin, "reload: echo reloaded")), RELOAD_S)
    async with websockets.connect(twin.ws, open_timeout=TIMEOUT_S) as ws:
        await ws.send('{"action":"echo","data":1}')
        await until(lambda: bool(_lines(twin, "boom in echo")), RELOAD_S)
    runtime = PROJECT_ROOT / "pipeline" / "runtime"
    # the logged traceback (a JSON log line: its quotes escaped)
    logged = "".join(x for x in twin.lines() if "boom in echo" in x and "Traceback" in x)
    assert f"{runtime}/batch.py" in logged, logged
    assert "/python/pipeline/runtime/" not in logged, logged
