"""Every ``$context.X`` the stack uses is one AWS documents for WebSocket APIs (issue 11, item 2).

The lists and their sources: pipeline/infrastructure/websocket_context_variables.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline import PROJECT_ROOT
from pipeline.infrastructure.templates import TEMPLATES_DIR
from pipeline.infrastructure.websocket_context_variables import (
    MAPPING_TEMPLATE_VARIABLES,
    UNVERIFIED_MAPPING_TEMPLATE_VARIABLES,
    context_variables,
    undocumented_in_access_log,
    undocumented_in_template,
)
from pipeline.infrastructure.websocket_ingress import ACCESS_LOG_FIELDS

pytestmark = pytest.mark.synth
TEMPLATE_PROPERTIES = ("RequestTemplates", "ResponseTemplates")


def _inline_templates(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> the JSON text of every request/response template in the stack."""
    found = {}
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for key in TEMPLATE_PROPERTIES:
            if key in props:
                found[f"{logical_id}.{key}"] = json.dumps(props[key])
    return found


def _access_log_formats(template: dict[str, Any]) -> list[str]:
    return [
        json.dumps(r["Properties"]["AccessLogSettings"]["Format"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ApiGatewayV2::Stage"
    ]


@pytest.fixture(scope="module")
def templates(stack_template: dict[str, Any], prod_assembly: Path) -> dict[str, dict[str, Any]]:
    prod = json.loads((prod_assembly / "WebSocketPipeline-prod.template.json").read_text())
    return {"dev": stack_template, "prod": prod}


def test_the_extractor_finds_every_reference_form() -> None:
    text = '$context.a ${context.b.c} $!{context.d} $!context.e.f "$context.g" $contextual $ctx.h'
    assert context_variables(text) == {"a", "b.c", "d", "e.f", "g"}


def test_the_checks_refuse_what_aws_does_not_list() -> None:
    # the variable the access log used before (an HTTP API variable, issue 11 item 2)
    assert undocumented_in_access_log(["integrationErrorMessage"]) == ["integrationErrorMessage"]
    assert undocumented_in_template(["integration.status", "requestId"]) == ["integration.status"]
    # disconnectStatusCode passes only through its explicit "unverified" entry, and only in
    # templates: an access log has no such escape
    assert "disconnectStatusCode" not in MAPPING_TEMPLATE_VARIABLES
    assert undocumented_in_template(["disconnectStatusCode"]) == []
    assert undocumented_in_access_log(["disconnectStatusCode"]) == ["disconnectStatusCode"]
    assert undocumented_in_template(["authorizer.tenant"]) == []  # authorizer.<property>


def test_every_unverified_entry_says_why_it_is_safe() -> None:
    for name, reason in UNVERIFIED_MAPPING_TEMPLATE_VARIABLES.items():
        assert name not in MAPPING_TEMPLATE_VARIABLES
        assert len(reason) > 40, name
    contracts = (PROJECT_ROOT / "docs" / "contracts.md").read_text()
    line = next(x for x in contracts.splitlines() if "context.disconnectStatusCode" in x)
    assert "unverified" in line.lower()


def test_access_log_fields_are_documented_websocket_logging_variables() -> None:
    names = context_variables(json.dumps(ACCESS_LOG_FIELDS))
    assert len(names) == len(ACCESS_LOG_FIELDS)
    assert undocumented_in_access_log(names) == []


@pytest.mark.parametrize("path", sorted(TEMPLATES_DIR.glob("*.vtl")), ids=lambda p: p.name)
def test_template_files_use_documented_mapping_template_variables(path: Path) -> None:
    names = context_variables(path.read_text(encoding="utf-8"))
    assert undocumented_in_template(names) == []


def test_synthesized_stacks_use_documented_variables(templates: dict[str, dict[str, Any]]) -> None:
    for stage, template in templates.items():
        inline = _inline_templates(template)
        assert any("RequestTemplates" in k for k in inline), stage
        for where, text in inline.items():
            assert undocumented_in_template(context_variables(text)) == [], f"{stage} {where}"
        formats = _access_log_formats(template)
        assert len(formats) == 1, stage
        assert context_variables(formats[0]), stage
        assert undocumented_in_access_log(context_variables(formats[0])) == [], stage
