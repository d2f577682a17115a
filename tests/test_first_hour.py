"""A newcomer's expected mistakes (issue 16): each ends in one clear line and a non-zero exit.

Every test runs the real command in a subprocess, as a user types it, and asserts the exit
status, the one line on stderr and that no traceback was printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from pipeline import PROJECT_ROOT
from pipeline.aws.limits import REGION
from pipeline.local.harness import TwinProcess, start_twin, stop_twin


def run(*argv: str, cwd: Path = PROJECT_ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m ARGV`` in ``cwd``, output captured."""
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def one_line(stderr: str) -> str:
    """stderr must be exactly one line with no traceback; returns it."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on (127.0.0.1), as a running twin's would be."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- 1. starting the twin twice -------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--port", "--aws-port"])
def test_a_busy_port_is_one_line_before_any_synth(
    flag: str, busy_port: int, tmp_path: Path
) -> None:
    other = "--aws-port" if flag == "--port" else "--port"
    assembly = tmp_path / "cdk.out"  # synthesizing would create it
    done = run("pipeline", "local", flag, str(busy_port), other, "0", "--assembly", str(assembly),
               timeout=60)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line == (f"port {busy_port} is in use (a twin is probably already running: stop it, "
                    "or use --port/--aws-port)")
    assert "synthesizing" not in done.stdout and not assembly.exists()


# --- 2. a malformed consumers/<name>/settings.json ------------------------------------------

@pytest.fixture
def broken_project(tmp_path: Path) -> Path:
    """A copy of the project whose echo consumer asks for ``"batchSize": "100"`` (a string)."""
    from test_scaffold import copy_project

    root = copy_project(tmp_path / "project")
    for tool in (".venv", "node_modules", ".build"):  # what `cdk.json`'s app command runs with
        if (PROJECT_ROOT / tool).exists():
            (root / tool).symlink_to(PROJECT_ROOT / tool)
    settings = root / "consumers" / "echo" / "settings.json"
    settings.write_text(settings.read_text().replace('"batchSize": 100', '"batchSize": "100"'))
    return root


def expect_settings_line(line: str, root: Path) -> None:
    path = root / "consumers" / "echo" / "settings.json"
    assert line == f"error: {path}: batchSize must be an integer 1..10000, not '100'"


def test_a_broken_settings_file_stops_the_twin_before_synth(broken_project: Path) -> None:
    done = run("pipeline", "local", "--port", "0", "--aws-port", "0", cwd=broken_project)
    assert done.returncode == 2
    expect_settings_line(one_line(done.stderr), broken_project)
    assert not (broken_project / "cdk.out").exists()


def test_make_synth_checks_the_settings_first(broken_project: Path) -> None:
    """``make synth`` runs ``python -m pipeline.registry`` before cdk: one line, exit 2."""
    done = run("pipeline.registry", cwd=broken_project, timeout=60)
    assert done.returncode == 2
    expect_settings_line(one_line(done.stderr), broken_project)
    assert "@$(PY) -m pipeline.registry" in (PROJECT_ROOT / "Makefile").read_text()


def test_app_py_prints_one_line_for_cdk(broken_project: Path) -> None:
    """What `cdk synth` runs (cdk.json's app): one line on stderr, a non-zero exit."""
    done = subprocess.run([sys.executable, "app.py"], cwd=broken_project, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1
    expect_settings_line(one_line(done.stderr), broken_project)


def test_registry_errors_name_the_key_as_written(tmp_path: Path) -> None:
    from pipeline.registry import RegistryError, load_spec

    folder = tmp_path / "svc"
    folder.mkdir()
    cases = {
        '{"routes": ["a"], "startingPosition": "NOW"}':
            "startingPosition must be one of LATEST, TRIM_HORIZON, not 'NOW'",
        '{"routes": ["a"], "maxRecordAgeSeconds": -1}':
            "maxRecordAgeSeconds must be an integer 60..604800 (finite), not -1",
        '{"routes": "a"}': "routes must be a list of strings, not 'a'",
        '{"routes": ["a"], "batch_size": 5}': "unknown settings ['batch_size']; the keys are "
                                              "routes, serverRouteKeys, batchSize,",
        '{"routes": ["a"], "roster": "write"}':
            "roster must be one of none, read, readwrite, not 'write'",
    }
    for text, expected in cases.items():
        (folder / "settings.json").write_text(text)
        with pytest.raises(RegistryError) as caught:
            load_spec("svc", tmp_path)
        assert f"{folder / 'settings.json'}: {expected}" in str(caught.value)


# --- 10. a bare `npx cdk synth` -------------------------------------------------------------

def test_bare_npx_cdk_prints_no_node_banner(broken_project: Path) -> None:
    """Without the Makefile's environment: no end-of-life banner, the settings line, exit 1."""
    import os
    import shutil

    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JSII_", "CDK_"))}
    done = subprocess.run([npx, "cdk", "synth", "--quiet"], cwd=broken_project, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "end-of-life" not in out and "b'!!" not in out and "Traceback" not in out, out
    path = broken_project / "consumers" / "echo" / "settings.json"
    assert f"error: {path}: batchSize must be an integer 1..10000, not '100'" in out


# --- 6 and 11. log files by logical name; a wrong stage path; which routes exist -------------

def test_misses_are_logged_once_per_interval_with_stage_and_routes() -> None:
    from pipeline.local.gateway.misses import MissLog

    now = [0.0]
    misses = MissLog("dev", ["echo", "$default", "join", "$connect", "$disconnect"],
                     interval_s=10, clock=lambda: now[0])
    first = misses.miss("GET", "/prod", "ws://127.0.0.1:8080")
    assert first == ("403 Forbidden for GET /prod: this twin serves stage 'dev' at "
                     "ws://127.0.0.1:8080/dev (routes: $connect, $disconnect, $default, echo, join)")
    assert [misses.miss("GET", "/", "ws://h:1") for _ in range(50)] == [None] * 50
    now[0] = 10.0
    again = misses.miss("GET", "/", "ws://h:1")
    assert again is not None and again.endswith("(+50 more since the last such line)")


def test_a_twin_says_what_it_serves_and_names_logs_by_function(
    cloud_assembly: Path, tmp_path: Path
) -> None:
    import asyncio
    import json
    import urllib.error
    import urllib.request

    import websockets

    from pipeline.local.harness import launch_twin, stop_twin

    logs = tmp_path / "logs"
    twin = launch_twin(["--no-synth", "--assembly", str(cloud_assembly), "--port", "0",
                        "--aws-port", "0", "--function-logs", str(logs)])
    try:
        banner = "".join(twin.lines())
        assert "(stage dev; any other path: 403)" in banner
        routes_line = next(line for line in twin.lines() if line.startswith("  routes  "))
        assert routes_line.split()[1:4] == ["$connect,", "$disconnect,", "$default,"]
        assert "dm, echo, join, leave, ping, send, who" in routes_line
        assert {p.name for p in logs.iterdir()} >= {"echo.log", "chat.log", "fallback.log",
                                                    "broadcast.log"}
        assert not [p for p in logs.iterdir() if p.name.startswith("WebSocketPipeline-")]

        base = twin.ws.rsplit("/", 1)[0].replace("ws://", "http://")
        # the demo page's browser asks for an icon: 204, not a 403 in its console
        with urllib.request.urlopen(base + "/favicon.ico", timeout=10) as icon:
            assert icon.status == 204
        # as API Gateway: 403 {"message":"Forbidden"} (`/` itself is the demo page, issue 13)
        for path in ("/prod", "/prod/"):
            for _ in range(20):  # a flood logs one line
                with pytest.raises(urllib.error.HTTPError) as caught:
                    urllib.request.urlopen(base + path, timeout=10)
                assert caught.value.code == 403
                assert json.loads(caught.value.read()) == {"message": "Forbidden"}
        lines = [line for line in twin.lines() if "403 Forbidden for" in line]
        assert len(lines) == 1 and "GET /prod: this twin serves stage 'dev' at ws://" in lines[0]
        assert "Traceback" not in "".join(twin.lines())

        async def unknown_action() -> dict[str, object]:
            async with websockets.connect(twin.ws, open_timeout=10) as ws:
                await ws.send('{"action": "teleport"}')
                return json.loads(await asyncio.wait_for(ws.recv(), 30))  # type: ignore[no-any-return]

        frame = asyncio.run(unknown_action())
        assert frame["error"] == "unknown_action" and frame["received"] == "teleport"
        assert isinstance(frame["routes"], list)
        assert {"echo", "join", "leave", "send"} <= set(frame["routes"])
        assert "the routes are dm, echo, join, leave, send, who" in str(frame["message"])

        # the scripted client waits for the replies that stdin-piped `python -m websockets` misses
        frames = '{"action":"echo","data":"hi"}\n{"action":"join","room":"lobby"}\nhello\n'
        talk = subprocess.run([sys.executable, "-m", "pipeline", "client", "--url", twin.ws],
                              input=frames, capture_output=True, text=True, timeout=60,
                              check=False)
        assert talk.returncode == 0, talk.stderr
        replies = [json.loads(line[2:]) for line in talk.stdout.splitlines()
                   if line.startswith("< ")]
        # three consumers answer: no order between them (per connection, per consumer only);
        # the presence consumer may also tell the new member of its own join (coalesced)
        replies = [r for r in replies if r["action"] != "presence"]
        by_action = {r["action"]: r for r in replies}
        assert sorted(by_action) == ["echo", "error", "joined"] and len(replies) == 3, talk.stdout
        assert by_action["echo"]["data"] == "hi" and by_action["error"]["error"] == "invalid_frame"
        wrong = run("pipeline", "client", "--url", twin.ws.replace("/dev", "/prod"), "{}")
        assert wrong.returncode == 1
        assert one_line(wrong.stderr).endswith(
            "/prod: the handshake was refused with HTTP 403 (a wrong stage path? `make local` "
            "serves ws://127.0.0.1:8080/dev)")
    finally:
        stop_twin(twin)


def test_the_client_without_a_twin_is_one_line() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run("pipeline", "client", "--url", f"ws://127.0.0.1:{port}/dev", "{}", timeout=60)
    assert done.returncode == 1
    assert one_line(done.stderr).endswith("is the twin running? start it with `make local`")


# --- 5. merging reports of different runs ----------------------------------------------------

@pytest.mark.parametrize(("key", "other", "what"), [
    ("scenario", "chat", "scenarios (echo vs chat)"),
    ("url", "ws://10.0.0.9:8080/dev", "targets (ws://127.0.0.1:8080/dev vs ws://10.0.0.9:8080/dev)"),
])
def test_merge_refuses_reports_of_different_runs(
    key: str, other: str, what: str, tmp_path: Path
) -> None:
    from loadtest.report import Report

    meta = {"scenario": "echo", "url": "ws://127.0.0.1:8080/dev", "rate": 10, "connections": 1}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    Report(meta=meta, duration_s=1.0).write(a)
    Report(meta={**meta, key: other}, duration_s=1.0).write(b)
    done = run("loadtest", "merge", str(a), str(b), "-o", str(tmp_path / "all.json"))
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"python -m loadtest: merge: {a} and {b} have different {what}: only runs of one "
        "scenario against one target merge; merge them separately")
    assert not (tmp_path / "all.json").exists()
    same = run("loadtest", "merge", str(a), str(a), "-o", str(tmp_path / "all.json"))
    assert same.returncode == 0 and (tmp_path / "all.json").exists()


# --- 8. load-test outputs land in a git-ignored folder ---------------------------------------

def test_bare_output_names_go_to_the_ignored_results_folder(tmp_path: Path) -> None:
    from loadtest.report import Report

    report = tmp_path / "a.json"
    Report(meta={"scenario": "echo", "url": "ws://x/dev"}, duration_s=1.0).write(report)
    # run from another folder: the load test is not in the wheel, so it comes from the checkout
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "loadtest", "merge", str(report), str(report),
                           "-o", "all.json"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "report: loadtest-results/all.json" in done.stdout
    assert (tmp_path / "loadtest-results" / "all.json").is_file()
    assert not (tmp_path / "all.json").exists()
    ignored = subprocess.run(["git", "check-ignore", "-q", "loadtest-results/run.json"],
                             cwd=PROJECT_ROOT, check=False)
    assert ignored.returncode == 0  # git check-ignore: 0 = ignored


# --- 7. the hostile run uses a running twin ----------------------------------------------------

def test_the_hostile_run_uses_the_running_twin(cloud_assembly: Path) -> None:
    from pipeline.local.harness import launch_twin, stop_twin

    twin = launch_twin(["--no-synth", "--assembly", str(cloud_assembly), "--port", "0",
                        "--aws-port", "0", "--function-logs", "-"])
    try:
        port = twin.ws.rsplit(":", 1)[1].split("/")[0]
        done = run("loadtest.hostile", "--port", port, "--aws-endpoint", twin.aws,
                   timeout=300)
        assert f"using the twin already running at ws://127.0.0.1:{port}/dev" in done.stdout
        assert "starting the twin" not in done.stdout and "synthesizing" not in done.stdout
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    finally:
        stop_twin(twin)


# --- issue 25: the client's exit status, the server's close, the auth hint -------------------

def client(*argv: str, stdin: str | None = None,
           wait: float | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline client --wait W ARGV``, frames from ``stdin`` if given: ``--expect``
    ends the wait as soon as its replies came, so W may be long (a busy box takes seconds)."""
    w = wait if wait is not None else (15 if "--expect" in argv else 1)
    return subprocess.run([sys.executable, "-m", "pipeline", "client", "--wait", f"{w:g}", *argv],
                          cwd=PROJECT_ROOT, input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.twin
def test_the_client_reports_a_close_by_the_server_and_exits_1(twin: TwinProcess) -> None:
    """A frame over the 128 KB message quota: the gateway closes with 1009; the client says so."""
    # on stdin: one argument cannot be that long (MAX_ARG_STRLEN is 128 KiB)
    done = client("--url", twin.ws, stdin='{"action":"echo","data":"' + "x" * 200_000 + '"}\n')
    assert done.returncode == 1, done.stderr
    assert one_line(done.stderr).startswith("closed by the server: 1009")


@pytest.mark.twin
def test_the_client_expect_counts_replies(twin: TwinProcess) -> None:
    frame = '{"action":"echo","data":"hi"}'
    enough = client("--url", twin.ws, "--expect", "1", frame)
    assert enough.returncode == 0, enough.stderr
    assert enough.stderr == "" and '< {"action":"echo","data":"hi"' in enough.stdout
    short = client("--url", twin.ws, "--expect", "2", frame, wait=5)  # 5 s of quiet after 1
    assert short.returncode == 1
    assert one_line(short.stderr) == "expected 2 replies, got 1"


@pytest.fixture(scope="module")
def token_twin(prod_assembly: Path) -> Iterator[TwinProcess]:
    """The prod assembly: an HS256 token authorizer on $connect."""
    running = start_twin(prod_assembly, stage="prod")
    yield running
    stop_twin(running)


@pytest.mark.twin
def test_auth_refusals_say_who_refused_and_never_print_the_token(
    token_twin: TwinProcess
) -> None:
    import time

    from pipeline.infrastructure.connect_authorizer.handler import encode_token

    missing = client("--url", token_twin.ws, "{}")
    assert missing.returncode == 1
    assert one_line(missing.stderr) == (
        f"{token_twin.ws}: refused by the $connect authorizer's identity source (HTTP 401): no "
        "token was sent; pass --token (`python -m pipeline token --sub NAME` mints one for the "
        "twin)")
    now = int(time.time())
    forged = encode_token(b"not the stack's secret, at least 32 bytes", {
        "sub": "mallory", "iat": now, "exp": now + 300})
    expected = (f"{token_twin.ws}?token=***: refused by the $connect authorizer (HTTP 403): the "
                "token was not accepted; the reason is in the authorizer's log (the twin: "
                ".twin/logs/ConnectAuthorization.log; AWS: its CloudWatch log group)")
    for argv in (("--url", token_twin.ws, "--token", forged),
                 ("--url", f"{token_twin.ws}?token={forged}")):
        bad = client(*argv, "{}")
        assert bad.returncode == 1
        assert one_line(bad.stderr) == expected
        assert forged not in bad.stdout + bad.stderr
        assert forged.split(".")[1] not in bad.stdout + bad.stderr  # not even its claims

    # garbage, and a token the stack's own secret signed that has expired: the same line, and
    # the reason is where the line says (the authorizer's log, inline in this twin's output)
    secrets = boto3.client("secretsmanager", endpoint_url=token_twin.aws, region_name=REGION,
                           aws_access_key_id="test", aws_secret_access_key="test")
    (entry,) = secrets.list_secrets()["SecretList"]
    secret = str(secrets.get_secret_value(SecretId=entry["ARN"])["SecretString"]).encode()
    expired = encode_token(secret, {"sub": "alice", "iat": now - 600, "exp": now - 300})
    for token in ("not-a-jwt", expired):
        bad = client("--url", token_twin.ws, "--token", token, "{}")
        assert bad.returncode == 1
        assert one_line(bad.stderr) == expected
        assert token not in bad.stdout + bad.stderr
    assert any('"connect denied"' in line and '"expired"' in line for line in token_twin.lines())
    valid = encode_token(secret, {"sub": "alice", "iat": now, "exp": now + 300})
    good = client("--url", token_twin.ws, "--token", valid, '{"action":"ping"}')
    assert good.returncode == 0, good.stderr  # connected: the refusals above were the token's
    assert valid not in good.stdout + good.stderr


@pytest.mark.twin
def test_host_binds_elsewhere_with_a_warning_and_urls_that_follow(cloud_assembly: Path) -> None:
    from pipeline.local.harness import launch_twin

    twin = launch_twin(["--no-synth", "--assembly", str(cloud_assembly), "--port", "0",
                        "--aws-port", "0", "--function-logs", "-", "--host", "0.0.0.0"])
    try:
        assert twin.ws.startswith("ws://0.0.0.0:") and twin.connections.startswith("http://0.0.0.0:")
        warnings = [line for line in twin.lines() if line.startswith("warning: --host")]
        assert warnings == ["warning: --host 0.0.0.0: other machines can reach the twin, and "
                            "stage dev has no auth (anyone who reaches it can connect and send)\n"]
        banner = "".join(twin.lines())
        assert f"WebSocket API     {twin.ws}" in banner
        local = twin.ws.replace("0.0.0.0", "127.0.0.1")
        # the echo consumer answers through @connections: the functions still reach the gateway
        done = client("--url", local, "--expect", "1", '{"action":"echo","data":"far"}')
        assert done.returncode == 0, done.stderr + "".join(twin.lines())
    finally:
        stop_twin(twin)
