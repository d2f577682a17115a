"""`python -m pipeline verify` against real twins, run as a user runs it (a subprocess).

The dev twin: every check passes, `auth` skips (the dev stack has no authorizer); names, order
and the JSON shape are the documented ones; outputs read from CloudFormation with `--stack`;
the checks that need AWS access skip, with the reason, without it. The prod twin (token auth):
`auth` passes because a connect without the token is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.aws.limits import REGION
from pipeline.infrastructure.connect_authorizer.handler import encode_token
from pipeline.local.harness import PROJECT_ROOT, TwinProcess, start_twin, stop_twin
from pipeline.verify.cli import CHECK_NAMES, TOTAL_S

pytestmark = [pytest.mark.twin, pytest.mark.synth]
NEEDS_AWS = ("prune-410", "publish", "connect-roster", "disconnect-status")


def _verify(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    base = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pipeline", "verify", *args], cwd=PROJECT_ROOT,
                          env=env or base, capture_output=True, text=True,
                          timeout=TOTAL_S + 30, check=False)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def _checks(path: Path) -> dict[str, dict[str, Any]]:
    document = json.loads(path.read_text())
    entries = document["checks"]
    assert [e["name"] for e in entries] == list(CHECK_NAMES)
    for entry in entries:
        assert set(entry) == {"name", "status", "detail", "ms"}
        assert entry["status"] in ("pass", "fail", "skip") and entry["detail"]
        assert entry["ms"] is None if entry["status"] == "skip" else entry["ms"] >= 0
    return {e["name"]: e for e in entries}


def test_every_check_passes_on_the_twin_and_auth_skips_without_an_authorizer(
    twin: TwinProcess, tmp_path: Path
) -> None:
    out = tmp_path / "verify.json"
    code, output, took = _verify("--url", twin.ws, "--aws-endpoint", twin.aws, "--json", str(out))
    assert code == 0, output
    assert took < TOTAL_S
    checks = _checks(out)
    assert json.loads(out.read_text())["passed"] is True
    assert checks.pop("auth")["status"] == "skip"
    alarm = checks.pop("alarm")  # no CloudWatch or SNS in the twin
    assert alarm["status"] == "skip" and "the twin has no CloudWatch" in alarm["detail"]
    assert {e["status"] for e in checks.values()} == {"pass"}, output
    assert "points at the stored record" in checks["ack"]["detail"]
    assert "closed the connection with 1009" in checks["message-too-big"]["detail"]
    assert "disconnectStatusCode 4000" in checks["disconnect-status"]["detail"]
    for name in CHECK_NAMES:  # one table row per check
        assert any(line.startswith(name + " ") for line in output.splitlines()), output


def test_stack_outputs_are_read_from_cloudformation(twin: TwinProcess, tmp_path: Path) -> None:
    # A stack in the twin's CloudFormation whose outputs name the twin's resources, as
    # `cdk deploy` leaves them (pipeline/infrastructure/stack.py).
    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=twin.aws, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test")

    (stream,) = client("kinesis").list_streams()["StreamNames"]
    (table,) = client("dynamodb").list_tables()["TableNames"]
    name = f"VerifyOutputs-{uuid.uuid4().hex[:8]}"
    outputs = {"WebSocketUrl": twin.ws, "StreamName": stream, "RosterTableName": table}
    client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps({
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }))
    out = tmp_path / "verify.json"
    code, output, _ = _verify("--stack", name, "--aws-endpoint", twin.aws, "--json", str(out))
    assert code == 0, output
    assert f"stream {stream}, roster {table}" in output
    checks = _checks(out)
    assert all(checks[n]["status"] == "pass" for n in NEEDS_AWS), output


@pytest.mark.parametrize("how", ["no endpoint", "stack without credentials"])
def test_without_aws_access_the_stream_and_roster_checks_skip(
    twin: TwinProcess, tmp_path: Path, how: str
) -> None:
    out = tmp_path / "verify.json"
    if how == "no endpoint":
        code, output, _ = _verify("--url", twin.ws, "--json", str(out))
        reason = "no AWS access"
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                   AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
        code, output, _ = _verify("--stack", "WebSocketPipeline-dev", "--url", twin.ws,
                                  "--region", REGION, "--json", str(out), env=env)
        reason = "no AWS credentials"
    assert code == 0, output
    checks = _checks(out)
    for name in NEEDS_AWS:
        assert checks[name]["status"] == "skip" and reason in checks[name]["detail"], output
    assert checks["ack"]["status"] == "pass"
    assert "reading the stored record skipped" in checks["ack"]["detail"]
    for name in ("connect", "echo", "unknown-action", "invalid-frame", "chat",
                 "message-too-big", "subprotocol"):
        assert checks[name]["status"] == "pass", output


def test_a_stage_that_refuses_fails_with_exit_status_1(twin: TwinProcess, tmp_path: Path) -> None:
    out = tmp_path / "verify.json"
    wrong_stage = twin.ws.rsplit("/", 1)[0] + "/nostage"
    code, output, _ = _verify("--url", wrong_stage, "--aws-endpoint", twin.aws, "--json", str(out))
    assert code == 1, output
    checks = _checks(out)
    assert checks["connect"] == {**checks["connect"], "status": "fail"}
    assert "refused with HTTP 403" in checks["connect"]["detail"]
    assert json.loads(out.read_text())["passed"] is False
    assert checks["echo"]["status"] == "skip"


def test_bad_arguments_exit_2() -> None:
    code, output, _ = _verify("--header", "no-colon", "--url", "ws://127.0.0.1:9/dev")
    assert code == 2 and "expected KEY:VALUE" in output
    code, output, _ = _verify()
    assert code == 2 and "--url" in output


@pytest.fixture(scope="module")
def prod_twin(prod_assembly: Path) -> Iterator[TwinProcess]:
    running = start_twin(prod_assembly, stage="prod")
    yield running
    stop_twin(running)


def test_auth_passes_on_a_stack_with_token_auth(prod_twin: TwinProcess, tmp_path: Path) -> None:
    secrets = boto3.client("secretsmanager", endpoint_url=prod_twin.aws, region_name=REGION,
                           aws_access_key_id="test", aws_secret_access_key="test")
    (entry,) = secrets.list_secrets()["SecretList"]
    secret = str(secrets.get_secret_value(SecretId=entry["ARN"])["SecretString"]).encode()
    now = int(time.time())
    token = encode_token(secret, {"sub": "verify", "iat": now, "exp": now + 600})
    out = tmp_path / "verify.json"
    code, output, _ = _verify("--url", prod_twin.ws, "--query", f"token={token}",
                              "--aws-endpoint", prod_twin.aws, "--json", str(out))
    assert code == 0, output
    assert token not in output  # the table never shows the token
    checks = _checks(out)
    assert checks["auth"]["status"] == "pass"
    # The identity source ?token= is missing: API Gateway's own 401.
    assert "refused with 401" in checks["auth"]["detail"]
    assert checks.pop("alarm")["status"] == "skip"  # no CloudWatch or SNS in the twin
    assert {e["status"] for e in checks.values()} == {"pass"}, output
