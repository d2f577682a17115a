"""cfn-lint and cdk-nag on the session's synthesized template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs

from pipeline.infrastructure.nag import enable_nag

pytestmark = pytest.mark.synth
TEMPLATE = "WebSocketPipeline-dev.template.json"


def test_cfn_lint_reports_nothing(cloud_assembly: Path) -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(cloud_assembly / TEMPLATE, config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_cdk_nag_ran_and_left_no_unacknowledged_finding(cloud_assembly: Path) -> None:
    # The session synth would have raised on any finding; the report proves nag was registered.
    report = json.loads((cloud_assembly / "validation-report.json").read_text())
    violations = [v for r in report["pluginReports"] for v in r.get("violations", [])]
    assert violations == []


def test_every_acknowledged_finding_has_a_one_line_reason(
    stack_template: dict[str, Any],
) -> None:
    acknowledged = [
        rule
        for resource in stack_template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert acknowledged, "expected the audit trail of acknowledged findings in the template"
    for rule in acknowledged:
        assert rule["id"].startswith("AwsSolutions-")
        assert 20 <= len(rule["reason"]) <= 120 and "\n" not in rule["reason"]


def test_nag_fails_the_synth_on_a_finding(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "NagProbe")
    sqs.Queue(stack, "PlainQueue")  # no DLQ, no SSL enforcement: AwsSolutions-SQS3/SQS4
    enable_nag(app)
    with pytest.raises(RuntimeError, match="ValidationFailed") as failure:
        app.synth()
    assert "AwsSolutions-SQS4" in str(failure.value)
