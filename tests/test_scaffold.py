"""``new-consumer`` / ``remove-consumer`` in a temporary copy of the project."""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import websockets
from runtime_kit.connections_stub import serve

from pipeline import DEFAULT_REGION, registry, scaffold
from pipeline.aws import limits
from pipeline.local.harness import start_twin, stop_twin

PROJECT_ROOT = Path(__file__).resolve().parent.parent

COPIED = ("pipeline", "consumers", "integration_templates", "app.py", "cdk.json", "pyproject.toml",
          "uv.lock")
Snapshot = dict[str, bytes | None]  # relative path -> file bytes (None for a directory)


def copy_project(dest: Path) -> Path:
    """The parts of the project a consumer touches (no .venv, node_modules, cdk.out)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "cdk.out", ".build")
    for name in COPIED:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    (dest / "tests").mkdir()
    shutil.copy2(PROJECT_ROOT / "tests" / "conftest.py", dest / "tests" / "conftest.py")
    return dest


def snapshot(root: Path) -> Snapshot:
    return {
        p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if "__pycache__" not in p.parts
    }


def cli(root: Path, command: str, *argv: str) -> int:
    """The command as ``python -m pipeline`` parses it, run in-process against ``root``."""
    parser = argparse.ArgumentParser()
    scaffold.add_arguments(parser, command)
    args = parser.parse_args([*argv, "--project-dir", str(root)])
    args.command = command
    return scaffold.run(args)


def registry_in(root: Path) -> dict[str, list[str]]:
    """``registry.load_all()`` of the copy, imported fresh in a subprocess (cwd = the copy)."""
    code = (
        "import json; from pipeline import registry; assert registry.PROJECT_ROOT.samefile('.');"
        "print(json.dumps({s.name: list(s.routes) for s in registry.load_all()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def test_new_consumer_writes_a_folder_and_its_test(project: Path) -> None:
    rc = cli(project, "new-consumer", "scores", "--route", "score", "--route", "top",
             "--batch-size", "10", "--starting-position", "TRIM_HORIZON", "--roster", "read")
    assert rc == 0
    folder = project / "consumers" / "scores"
    assert sorted(p.name for p in folder.iterdir()) == ["handler.py", "settings.json"]
    spec = registry.load_spec("scores", project / "consumers")
    assert (spec.routes, spec.batch_size, spec.starting_position, spec.roster) == (
        ("score", "top"), 10, "TRIM_HORIZON", "read"
    )
    handler = (folder / "handler.py").read_text()
    assert "def record_handler(" in handler and "def lambda_handler(" in handler
    assert "TODO" in handler
    test_file = project / "tests" / "consumers" / "test_scores_twin.py"
    assert 'ROUTES = ("score", "top")' in test_file.read_text()
    for path in (folder / "handler.py", test_file):
        compile(path.read_text(), str(path), "exec")
    assert sorted(p.name for p in (project / "consumers").iterdir()) == [
        "broadcast", "chat", "echo", "fallback", "fanout", "presence", "scores"]  # no staging folder left behind
    loaded = registry_in(project)
    assert list(loaded) == sorted(loaded) and loaded["scores"] == ["score", "top"]


def test_generated_files_pass_ruff_and_mypy(project: Path) -> None:
    """``make lint`` runs ruff on everything and mypy --strict on consumers/."""
    assert cli(project, "new-consumer", "scores", "--route", "score") == 0
    handler = project / "consumers" / "scores" / "handler.py"
    test_file = project / "tests" / "consumers" / "test_scores_twin.py"
    bin_dir = Path(sys.executable).parent
    for cmd in ([str(bin_dir / "ruff"), "check", "--no-cache", str(handler), str(test_file)],
                [str(bin_dir / "mypy"), "--cache-dir", str(project / ".mypy_cache"), str(handler)]):
        out = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr


def test_the_dispatcher_runs_it_against_its_own_project(project: Path) -> None:
    """``python -m pipeline new-consumer`` without --project-dir edits the project it runs from."""
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "new-consumer", "scores", "--route", "score"],
        cwd=project, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "wrote consumers/scores/handler.py" in out.stdout
    assert registry_in(project)["scores"] == ["score"]


REFUSALS = [
    (["echo", "--route", "pings"], "consumers/echo already exists"),
    (["scores", "--route", "echo"], "route 'echo' is already claimed by consumer 'echo'"),
    (["scores", "--route", "x", "--route", "$default"], "route '$default' is already claimed by consumer 'fallback'"),
    (["scores", "--route", "$connect"], "route '$connect' is reserved"),
    (["scores", "--route", "ping"], "route 'ping' is reserved"),
    (["Scores", "--route", "score"], "invalid consumer name 'Scores'"),
    (["s", "--route", "score"], "invalid consumer name 's'"),
    (["scores", "--route", "bad route"], "invalid route 'bad route'"),
    (["scores", "--route", "a", "--route", "a"], "a route is given twice"),
    (["scores", "--route", "$disconnect"], "at least one client action route"),
    (["scores", "--route", "a", "--batch-size", "0"], "--batch-size must be 1..10000"),
    (["scores", "--route", "a", "--description", 'say "hi"'], "--description must be"),
]


@pytest.mark.parametrize(("argv", "reason"), REFUSALS, ids=[r for _, r in REFUSALS])
def test_refusals_write_nothing(
    project: Path, argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project)
    assert cli(project, "new-consumer", *argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("new-consumer: refused: ")
    assert reason in err
    assert snapshot(project) == before


def test_an_existing_folder_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "consumers" / "scores").mkdir()
    before = snapshot(project)
    assert cli(project, "new-consumer", "scores", "--route", "score") == 1
    assert "consumers/scores already exists" in capsys.readouterr().err
    assert snapshot(project) == before


def test_a_broken_or_missing_project_is_refused(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(tmp_path / "empty", "new-consumer", "scores", "--route", "score") == 1
    assert "is not a project: no consumers/ folder" in capsys.readouterr().err
    assert cli(tmp_path / "empty", "remove-consumer", "scores") == 1
    assert "is not a project: no consumers/ folder" in capsys.readouterr().err
    half = project / "consumers" / "half"
    half.mkdir()
    (half / "handler.py").write_text("")
    before = snapshot(project)
    assert cli(project, "new-consumer", "scores", "--route", "score") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(
        f"the existing consumers are invalid: {half}: a consumer folder needs handler.py and "
        "settings.json; settings.json is missing\n")
    assert snapshot(project) == before


@pytest.mark.parametrize("settings", [
    "{not json", "[]", '{"routes": ["x"], "batchSize": "9"}',
    '{"routes": ["echo"], "timeoutSeconds": 901}', '{"routes": ["echo"], "memoryMb": 64}'])
def test_a_broken_settings_file_is_a_refusal_not_a_crash(
    project: Path, settings: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "consumers" / "echo" / "settings.json").write_text(settings)
    before = snapshot(project)
    assert cli(project, "new-consumer", "scores", "--route", "score") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the existing consumers are invalid: " in err
    assert snapshot(project) == before


def test_the_21st_consumer_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = len(registry_in(project))
    for i in range(limits.MAX_STREAM_CONSUMERS - existing):
        assert cli(project, "new-consumer", f"svc{i:02d}", "--route", f"act{i}") == 0
    assert len(registry_in(project)) == limits.MAX_STREAM_CONSUMERS
    before = snapshot(project)
    assert cli(project, "new-consumer", "one_too_many", "--route", "more") == 1
    assert "20 consumers exist; a Kinesis stream allows 20" in capsys.readouterr().err
    assert snapshot(project) == before


@pytest.mark.parametrize("failing", ["handler.py", "settings.json", "test_scores_twin.py"])
def test_a_failed_write_removes_the_folder_again(
    project: Path, failing: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(project)
    real_write = scaffold._write

    def failing_write(path: Path, text: str) -> None:
        if path.name == failing:
            raise OSError(28, "No space left on device")
        real_write(path, text)

    monkeypatch.setattr(scaffold, "_write", failing_write)
    assert cli(project, "new-consumer", "scores", "--route", "score") == 1
    assert "nothing written: [Errno 28] No space left on device" in capsys.readouterr().err
    assert snapshot(project) == before  # no folder, no staging folder, no tests/consumers/


def test_a_failed_final_check_removes_the_folder_again(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder is in place when ``load_all`` re-reads every consumer; a refusal there (here:
    a consumer that appeared meanwhile claims the route) takes it out again."""
    before = snapshot(project)
    real_load_all = registry.load_all
    calls = []

    def late_conflict(consumers_dir: Path = registry.CONSUMERS_DIR) -> list[registry.ConsumerSpec]:
        calls.append(consumers_dir)
        if len(calls) == 2:
            raise registry.RegistryError("route 'score' is claimed by both 'rival' and 'scores'")
        return real_load_all(consumers_dir)

    monkeypatch.setattr(registry, "load_all", late_conflict)
    assert cli(project, "new-consumer", "scores", "--route", "score") == 1
    assert "nothing written: route 'score' is claimed by both" in capsys.readouterr().err
    assert snapshot(project) == before


def test_a_killed_runs_staging_folder_is_skipped_and_replaced(project: Path) -> None:
    """``new-consumer`` fills ``consumers/.NAME.scaffold/`` and renames it into place: discovery
    skips hidden folders, so a run killed half-way leaves the stack as it was."""
    staging = project / "consumers" / ".scores.scaffold"
    staging.mkdir()
    (staging / "handler.py").write_text("half")
    assert "scores" not in registry_in(project)
    assert cli(project, "new-consumer", "scores", "--route", "score") == 0
    assert not staging.exists() and registry_in(project)["scores"] == ["score"]


def test_remove_leaves_the_tree_byte_identical(project: Path) -> None:
    before = snapshot(project)
    assert cli(project, "new-consumer", "scores", "--route", "score", "--route", "top") == 0
    assert snapshot(project) != before
    # What running the consumer and its test leaves behind does not block the removal.
    (project / "consumers" / "scores" / "__pycache__").mkdir()
    (project / "consumers" / "scores" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"x")
    cache = project / "tests" / "consumers" / "__pycache__"
    cache.mkdir()
    (cache / "test_scores_twin.cpython-311-pytest-8.4.2.pyc").write_bytes(b"x")
    assert cli(project, "remove-consumer", "scores") == 0
    assert snapshot(project) == before
    assert not (project / "tests" / "consumers").exists()
    assert "scores" not in registry_in(project)


def test_remove_refuses_unknown_and_foreign_files(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(project, "remove-consumer", "nosuch") == 1
    assert "no consumer 'nosuch': no consumers/nosuch/" in capsys.readouterr().err
    assert cli(project, "new-consumer", "scores", "--route", "score") == 0
    (project / "consumers" / "scores" / "model.py").write_text("WEIGHTS = 1\n")
    before = snapshot(project)
    assert cli(project, "remove-consumer", "scores") == 1
    err = capsys.readouterr().err
    assert "consumers/scores/model.py" in err and "--force" in err
    assert snapshot(project) == before
    assert cli(project, "remove-consumer", "scores", "--force") == 0
    assert not (project / "consumers" / "scores").exists()
    assert "scores" not in registry_in(project)


def test_hand_written_consumers_need_force(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project)
    assert cli(project, "remove-consumer", "echo") == 1
    assert "consumers/echo/handler.py (not written by new-consumer)" in capsys.readouterr().err
    assert snapshot(project) == before


def _load(path: Path) -> ModuleType:
    """Import a file under a name of its own (registered: dataclasses need sys.modules)."""
    name = f"scaffold_loaded_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _kinesis_event(*envelopes: dict[str, object]) -> dict[str, object]:
    records = []
    for i, envelope in enumerate(envelopes):
        records.append({"eventSource": "aws:kinesis", "kinesis": {
            "partitionKey": str(envelope["connectionId"]) or "server", "sequenceNumber": f"{i + 1:056d}",
            "approximateArrivalTimestamp": 1_700_000_000.5, "kinesisSchemaVersion": "1.0",
            "data": base64.b64encode(json.dumps(envelope).encode()).decode(),
        }, "eventID": f"shardId-000000000000:{i + 1:056d}"})
    return {"Records": records}


def _envelope(route: str, event_type: str, cid: str, body: str) -> dict[str, object]:
    return {"v": 1, "routeKey": route, "eventType": event_type, "connectionId": cid,
            "requestId": "req-1", "messageId": "m-1", "requestTimeEpoch": 1_700_000_000_123,
            "stage": "dev", "domainName": "x", "sourceIp": "127.0.0.1", "principal": "",
            "body": body}


def test_the_generated_handler_replies_to_the_sender(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated ``lambda_handler`` against a local @connections endpoint that answers like
    API Gateway's (tests/runtime_kit/connections_stub.py); the twin runs it in e2e."""
    assert cli(project, "new-consumer", "scores", "--route", "score", "--route", "$disconnect") == 0
    path = project / "consumers" / "scores" / "handler.py"
    module = _load(path)
    for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                       "AWS_DEFAULT_REGION": DEFAULT_REGION, "AWS_REGION": DEFAULT_REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    frame = json.dumps({"action": "score", "data": {"points": 3, "who": "ann"}})
    event = _kinesis_event(
        _envelope("score", "MESSAGE", "conn-A=", frame),
        _envelope("$disconnect", "DISCONNECT", "conn-B=", ""),
        _envelope("score", "MESSAGE", "conn-C=", "not json at all"),
    )
    with serve() as endpoint:
        monkeypatch.setenv("CONNECTIONS_ENDPOINT_URL", endpoint.url)
        response = module.lambda_handler(event, None)
        sent = {cid: json.loads(body) for cid, body in endpoint.posts}
    assert response == {"batchItemFailures": []}
    assert sent == {
        "conn-A=": {"action": "score", "ok": True, "data": {"points": 3, "who": "ann"}},
        "conn-C=": {"action": "score", "ok": True, "data": None},
    }


# --- end to end: synth the copy, run the twin on it, talk to the new consumer ------------------

E2E_NEEDS = ("pipeline.infrastructure.synth", "pipeline.local.cli", "pipeline.runtime")


def _missing(modules: tuple[str, ...]) -> list[str]:
    missing = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:
            missing.append(name)
    return missing


@pytest.mark.synth
@pytest.mark.twin
@pytest.mark.timeout(240)
@pytest.mark.skipif(bool(_missing(E2E_NEEDS)), reason=f"not built yet: {_missing(E2E_NEEDS)}")
async def test_a_new_consumer_is_synthesized_and_answers_on_the_twin(project: Path) -> None:
    assert cli(project, "new-consumer", "scores", "--route", "score", "--route", "top",
               "--starting-position", "TRIM_HORIZON") == 0
    if (PROJECT_ROOT / ".build").is_dir():  # the layer cache is keyed by content: share it
        (project / ".build").symlink_to(PROJECT_ROOT / ".build")
    outdir = project / "cdk.out"
    code = (
        "import sys; from pathlib import Path; from pipeline.infrastructure.synth import synthesize;"
        "synthesize(Path(sys.argv[1]), {'stage': 'dev'})"
    )
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    synth = subprocess.run([sys.executable, "-c", code, str(outdir)], cwd=project, env=env,
                           capture_output=True, text=True, timeout=180)
    assert synth.returncode == 0, synth.stderr[-3000:]
    template = json.loads((outdir / "WebSocketPipeline-dev.template.json").read_text())
    resources: dict[str, Any] = template["Resources"]
    routes = {r["Properties"]["RouteKey"] for r in resources.values()
              if r["Type"] == "AWS::ApiGatewayV2::Route"}
    assert {"score", "top"} <= routes
    [consumer_id] = [k for k, r in resources.items() if r["Type"] == "AWS::Kinesis::StreamConsumer"
                     # a non-LATEST position is in the name (consumer_service.stream_consumer_name)
                     and r["Properties"]["ConsumerName"].endswith("-scores-trim-horizon")]
    [mapping] = [r["Properties"] for r in resources.values()
                 if r["Type"] == "AWS::Lambda::EventSourceMapping"
                 and r["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [consumer_id, "ConsumerARN"]}]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    [pattern] = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {"data": {"routeKey": ["score", "top"]}}
    function = resources[mapping["FunctionName"]["Ref"]]["Properties"]
    assert function["Handler"] == "handler.lambda_handler"

    twin = start_twin(outdir, cwd=project)
    try:
        async with websockets.connect(twin.ws, open_timeout=10) as ws:
            await ws.send(json.dumps({"action": "top", "data": {"n": [1, 2]}}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        assert reply == {"action": "top", "ok": True, "data": {"n": [1, 2]}}
        # The generated test file passes too (run against this twin, not a second one).
        generated = _load(project / "tests" / "consumers" / "test_scores_twin.py")
        for route in generated.ROUTES:
            await generated.test_scores_answers_the_sender(twin, route)
    finally:
        stop_twin(twin)
