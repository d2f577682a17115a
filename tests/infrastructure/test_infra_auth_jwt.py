"""auth=jwt in the template: the authorizer's wiring, its arm64 dependency layer, and
``-c cognito=true`` (user pool + app client wired as issuer and audience); lint-clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

pytestmark = pytest.mark.synth
TEMPLATE = "WebSocketPipeline-dev.template.json"


@pytest.fixture(scope="module")
def cognito_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.infrastructure.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out.cognito"),
                      {"stage": "dev", "auth": "jwt", "cognito": "true"})


def _template(assembly: Path) -> dict[str, Any]:
    return json.loads((assembly / TEMPLATE).read_text())  # type: ignore[no-any-return]


def _one(template: dict[str, Any], rtype: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, v) for k, v in template["Resources"].items() if v["Type"] == rtype]
    return found


def _authorizer_function(template: dict[str, Any]) -> dict[str, Any]:
    (function,) = [v for v in template["Resources"].values()
                   if v["Type"] == "AWS::Lambda::Function"
                   and "AUTH_MODE" in v["Properties"].get("Environment", {}).get("Variables", {})]
    return function


def test_cognito_creates_a_pool_and_client_and_wires_the_authorizer(
    cognito_assembly: Path,
) -> None:
    template = _template(cognito_assembly)
    pool_id, _ = _one(template, "AWS::Cognito::UserPool")
    client_id, client = _one(template, "AWS::Cognito::UserPoolClient")
    assert client["Properties"]["UserPoolId"] == {"Ref": pool_id}
    assert client["Properties"].get("GenerateSecret") in (None, False)
    variables = _authorizer_function(template)["Properties"]["Environment"]["Variables"]
    assert variables == {"AUTH_MODE": "jwt",
                         "JWT_ISSUER": {"Fn::GetAtt": [pool_id, "ProviderURL"]},
                         "JWT_AUDIENCE": {"Ref": client_id}}
    outputs = template["Outputs"]
    assert outputs["UserPoolId"]["Value"] == {"Ref": pool_id}
    assert outputs["UserPoolClientId"]["Value"] == {"Ref": client_id}
    assert outputs["JwtIssuer"]["Value"] == {"Fn::GetAtt": [pool_id, "ProviderURL"]}
    Template.from_json(template).has_resource_properties("AWS::ApiGatewayV2::Route", {
        "RouteKey": "$connect", "AuthorizationType": "CUSTOM", "AuthorizerId": Match.any_value()})


def test_an_issuer_from_context_is_wired_and_no_pool_is_made(jwt_assembly: Path) -> None:
    template = _template(jwt_assembly)
    variables = _authorizer_function(template)["Properties"]["Environment"]["Variables"]
    assert variables == {"AUTH_MODE": "jwt", "JWT_ISSUER": "http://127.0.0.1:8080",
                         "JWT_AUDIENCE": "websocket-pipeline-local"}
    types = {v["Type"] for v in template["Resources"].values()}
    assert "AWS::Cognito::UserPool" not in types
    assert "AWS::SecretsManager::Secret" not in types  # the HS256 secret is auth=token only


def test_the_authorizer_ships_pyjwt_and_cryptography_for_arm64_in_a_layer(
    jwt_assembly: Path,
) -> None:
    template = _template(jwt_assembly)
    function = _authorizer_function(template)
    assert function["Properties"]["Architectures"] == ["arm64"]
    (layer_ref,) = function["Properties"]["Layers"]
    layer = template["Resources"][layer_ref["Ref"]]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    asset = jwt_assembly / layer["Metadata"]["aws:asset:path"] / "python"
    assert (asset / "jwt" / "jwks_client.py").is_file()
    assert list((asset / "cryptography" / "hazmat" / "bindings").glob("_rust*.so"))
    (wheel,) = asset.glob("cryptography-*.dist-info/WHEEL")
    tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines()
            if line.startswith("Tag:")]
    assert tags and all(t.endswith("aarch64") for t in tags), tags
    code = jwt_assembly / function["Metadata"]["aws:asset:path"]
    assert sorted(p.name for p in code.iterdir() if p.suffix == ".py") == [
        "__init__.py", "handler.py"]


@pytest.mark.parametrize("which", ["jwt", "cognito"])
def test_cfn_lint_and_cdk_nag_are_clean(which: str, jwt_assembly: Path,
                                        cognito_assembly: Path) -> None:
    from cfnlint.api import ManualArgs, lint_file

    assembly = jwt_assembly if which == "jwt" else cognito_assembly
    matches = lint_file(assembly / TEMPLATE, config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []
    report = json.loads((assembly / "validation-report.json").read_text())
    assert [v for r in report["pluginReports"] for v in r.get("violations", [])] == []


def test_the_twin_resolves_the_pools_issuer_and_client_id(cognito_assembly: Path) -> None:
    from pipeline.local.cfn import load_template, resolve_stack

    stack = resolve_stack(load_template(cognito_assembly, "WebSocketPipeline-dev"),
                          "WebSocketPipeline-dev", cognito_assembly)
    assert stack.warnings == []
    (variables,) = [f.properties["Environment"]["Variables"]
                    for f in stack.of_type("AWS::Lambda::Function")
                    if "AUTH_MODE" in f.properties.get("Environment", {}).get("Variables", {})]
    issuer, audience = variables["JWT_ISSUER"], variables["JWT_AUDIENCE"]
    assert issuer.startswith("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_")
    assert audience.isalnum() and audience.islower()
