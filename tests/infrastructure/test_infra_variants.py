"""Context variants: prod (token auth, in-process synth) and the CDK CLI (IAM auth).

These are the session's only extra synths (two): keep it that way, a synth costs ~7-13 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline import PROJECT_ROOT

pytestmark = pytest.mark.synth
Template = dict[str, Any]


def of_type(template: Template, kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def routes_by_key(template: Template) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in of_type(template, "AWS::ApiGatewayV2::Route").values()
    }


@pytest.fixture(scope="module")
def prod_template(prod_assembly: Path) -> Template:
    path = prod_assembly / "WebSocketPipeline-prod.template.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_prod_defaults_to_a_token_authorizer_on_connect_only(prod_template: Template) -> None:
    authorizers = of_type(prod_template, "AWS::ApiGatewayV2::Authorizer")
    assert len(authorizers) == 1
    (authorizer_id, authorizer), = authorizers.items()
    assert authorizer["Properties"]["AuthorizerType"] == "REQUEST"
    # API Gateway refuses a connect without ?token= (401) before invoking the function.
    assert authorizer["Properties"]["IdentitySource"] == ["route.request.querystring.token"]
    routes = routes_by_key(prod_template)
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert routes["$connect"]["AuthorizerId"] == {"Ref": authorizer_id}
    for key, route in routes.items():
        if key != "$connect":
            assert route["AuthorizationType"] == "NONE" and "AuthorizerId" not in route


def test_token_authorizer_reads_its_generated_secret(prod_template: Template) -> None:
    (secret_id, secret), = of_type(prod_template, "AWS::SecretsManager::Secret").items()
    assert "GenerateSecretString" in secret["Properties"]
    functions = [
        f["Properties"] for f in of_type(prod_template, "AWS::Lambda::Function").values()
        if "TOKEN_SECRET_ARN" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(functions) == 1
    assert functions[0]["Environment"]["Variables"]["TOKEN_SECRET_ARN"] == {"Ref": secret_id}
    assert functions[0]["Architectures"] == ["arm64"]
    statements = [
        s for p in of_type(prod_template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Resource") == {"Ref": secret_id}
    ]
    assert any("secretsmanager:GetSecretValue" in s["Action"] for s in statements)


def test_context_sets_stage_shards_and_retention(prod_template: Template) -> None:
    (stream,) = of_type(prod_template, "AWS::Kinesis::Stream").values()
    assert stream["Properties"]["ShardCount"] == 4
    assert stream["Properties"]["RetentionPeriodHours"] == 48
    (stage,) = of_type(prod_template, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["StageName"] == "prod"


@pytest.mark.skipif(shutil.which("npx") is None, reason="Node/npx is not installed")
def test_cdk_cli_synth_with_iam_auth(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        # offline after `make install`: pip may not reach an index (the layer's wheels are cached)
        "PIP_NO_INDEX": "1",
    }
    cmd = [
        "npx", "--no-install", "cdk", "synth", "--quiet", "-o", str(tmp_path),
        "-c", "stage=staging", "-c", "auth=iam", "-c", "shards=3",
    ]
    done = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    template = json.loads((tmp_path / "WebSocketPipeline-staging.template.json").read_text())
    routes = routes_by_key(template)
    assert routes["$connect"]["AuthorizationType"] == "AWS_IAM"
    assert all(r["AuthorizationType"] == "NONE" for k, r in routes.items() if k != "$connect")
    assert of_type(template, "AWS::ApiGatewayV2::Authorizer") == {}
    (stream,) = of_type(template, "AWS::Kinesis::Stream").values()
    assert stream["Properties"]["ShardCount"] == 3


@pytest.mark.skipif(shutil.which("npx") is None, reason="Node/npx is not installed")
def test_cdk_cli_refuses_a_bad_context_value_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           "CDK_DISABLE_CLI_TELEMETRY": "true"}
    done = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/python"), "app.py"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**env, "CDK_CONTEXT_JSON": json.dumps({"auth": "basic"}), "CDK_OUTDIR": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "context auth='basic' is invalid: expected none | iam | token" in done.stderr
