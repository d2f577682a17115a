"""Synth tests for issue 11's infrastructure findings: what a first real deploy needs.

- item 5: every Kinesis integration sends ``Content-Type: application/x-amz-json-1.1``;
- item 7: at most 5 stream consumers are created at once (20-consumer stack), and, issue 21
  finding 3, a group of 5 waits for the previous group to be ACTIVE, not just CREATE_COMPLETE;
- item 8: the account-level API Gateway role is retained, and can be left to an existing one;
- item 9: no literal ``arn:aws:`` partition; the stream is retained on prod only.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from pipeline.aws.limits import MAX_STREAM_CONSUMERS
from pipeline.infrastructure.config import PipelineConfig
from pipeline.infrastructure.consumer_activation import (
    CONSUMERS_CREATING_AT_ONCE,
    WAITER_RESOURCE_TYPE,
)
from pipeline.infrastructure.nag import enable_nag
from pipeline.infrastructure.stack import PipelineStack
from pipeline.infrastructure.synth import CLI_CONTEXT
from pipeline.registry import CONSUMERS_DIR, load_all

pytestmark = pytest.mark.synth
Template = dict[str, Any]
CONTENT_TYPE = "integration.request.header.Content-Type"


def _of_type(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def templates(stack_template: Template, prod_assembly: Path) -> dict[str, Template]:
    prod = json.loads((prod_assembly / "WebSocketPipeline-prod.template.json").read_text())
    return {"dev": stack_template, "prod": prod}


@pytest.fixture(scope="module")
def wide_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A stack with the registry's maximum of 20 consumers, ``auth=iam`` and
    ``apiGatewayAccountRole=existing``, synthesized with cdk-nag on (any unacknowledged finding
    fails the synth). The one extra synth these findings need (~10-30 s)."""
    consumers = tmp_path_factory.mktemp("consumers")  # consumers/ stays untouched
    settings = json.loads((CONSUMERS_DIR / "echo" / "settings.json").read_text())
    for i in range(MAX_STREAM_CONSUMERS):
        folder = consumers / f"c{i:02d}"
        folder.mkdir()
        shutil.copy2(CONSUMERS_DIR / "echo" / "handler.py", folder / "handler.py")
        (folder / "settings.json").write_text(json.dumps({**settings, "routes": [f"r{i:02d}"]}))
    specs = load_all(consumers)
    context = {
        **CLI_CONTEXT, "stage": "wide", "auth": "iam", "apiGatewayAccountRole": "existing"
    }
    app = App(outdir=str(tmp_path_factory.mktemp("cdk.out.wide")), context=context)
    config = PipelineConfig.from_context(app.node.try_get_context)
    PipelineStack(app, config.stack_name, config=config, consumers=specs)
    enable_nag(app)
    assembly = app.synth()
    return assembly.get_stack_by_name(config.stack_name).template  # type: ignore[no-any-return]


# --- item 5: Content-Type ----------------------------------------------------------------------

def test_every_kinesis_integration_sends_the_json_1_1_content_type(
    templates: dict[str, Template],
) -> None:
    for stage, template in templates.items():
        integrations = _of_type(template, "AWS::ApiGatewayV2::Integration").values()
        kinesis = [i["Properties"] for i in integrations
                   if ":kinesis:action/" in json.dumps(i["Properties"]["IntegrationUri"])]
        assert len(kinesis) >= 2, stage  # one-way and acked PutRecord integrations
        for props in kinesis:
            assert props["RequestParameters"] == {CONTENT_TYPE: "'application/x-amz-json-1.1'"}


def test_the_dynamodb_connect_integration_is_as_awss_sample_has_it(
    templates: dict[str, Template],
) -> None:
    # serverless-patterns apigw-websocket-api-connection-dynamodb sets no Content-Type
    for template in templates.values():
        integrations = _of_type(template, "AWS::ApiGatewayV2::Integration").values()
        (put_item,) = [i["Properties"] for i in integrations
                       if ":dynamodb:action/PutItem" in json.dumps(i["Properties"]["IntegrationUri"])]
        assert CONTENT_TYPE not in put_item.get("RequestParameters", {})


# --- item 9: partition, stream retention ---------------------------------------------------------

def test_no_literal_aws_partition_in_any_template(
    templates: dict[str, Template], wide_template: Template
) -> None:
    for template in (*templates.values(), wide_template):
        text = json.dumps(template)
        assert "arn:aws:" not in text
        assert '"Ref": "AWS::Partition"' in text


def test_integration_uris_use_the_stacks_partition(templates: dict[str, Template]) -> None:
    for template in templates.values():
        for integration in _of_type(template, "AWS::ApiGatewayV2::Integration").values():
            if integration["Properties"]["IntegrationType"] == "MOCK":
                continue  # the ping keepalive: no service, no URI
            uri = integration["Properties"]["IntegrationUri"]
            parts = uri["Fn::Join"][1]
            assert parts[0] == "arn:" and parts[1] == {"Ref": "AWS::Partition"}


def test_the_stream_is_retained_on_prod_and_deleted_elsewhere(
    templates: dict[str, Template], wide_template: Template
) -> None:
    policies = {
        stage: [(r["DeletionPolicy"], r["UpdateReplacePolicy"])
                for r in _of_type(template, "AWS::Kinesis::Stream").values()]
        for stage, template in {**templates, "wide": wide_template}.items()
    }
    assert policies == {
        "dev": [("Delete", "Delete")],
        "prod": [("Retain", "Retain")],
        "wide": [("Delete", "Delete")],
    }


# --- item 8: account-level API Gateway settings --------------------------------------------------

def test_the_account_setting_and_its_role_survive_a_stack_delete(
    templates: dict[str, Template],
) -> None:
    for stage, template in templates.items():
        (account,) = _of_type(template, "AWS::ApiGateway::Account").values()
        assert (account["DeletionPolicy"], account["UpdateReplacePolicy"]) == ("Retain", "Retain")
        role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
        role = template["Resources"][role_id]
        assert (role["DeletionPolicy"], role["UpdateReplacePolicy"]) == ("Retain", "Retain"), stage
        assert "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(role["Properties"])


def test_existing_account_role_leaves_the_account_setting_alone(wide_template: Template) -> None:
    assert _of_type(wide_template, "AWS::ApiGateway::Account") == {}
    assert "AmazonAPIGatewayPushToCloudWatchLogs" not in json.dumps(wide_template)
    (stage,) = _of_type(wide_template, "AWS::ApiGatewayV2::Stage").values()
    assert "Format" in stage["Properties"]["AccessLogSettings"]  # logging still configured


# --- item 7: at most 5 stream consumers created at once ------------------------------------------

def _consumer_dependencies(template: Template) -> dict[str, set[str]]:
    """Consumer logical id -> the consumers it (transitively) waits for, through any resource
    (DependsOn, Ref and Fn::GetAtt: the waiters between groups)."""
    resources = template["Resources"]
    direct = {rid: set(_depends_on(r)) | _references(r.get("Properties", {}), resources)
              for rid, r in resources.items()}
    closure: dict[str, set[str]] = {}

    def visit(rid: str) -> set[str]:
        if rid not in closure:
            closure[rid] = set(direct[rid])
            for dep in direct[rid]:
                closure[rid] |= visit(dep)
        return closure[rid]

    consumers = _of_type(template, "AWS::Kinesis::StreamConsumer")
    return {cid: visit(cid) & set(consumers) for cid in consumers}


def _depends_on(resource: dict[str, Any]) -> list[str]:
    value = resource.get("DependsOn", [])
    return [value] if isinstance(value, str) else list(value)


def _references(value: Any, resources: dict[str, Any]) -> set[str]:
    if isinstance(value, list):
        return set().union(*(_references(v, resources) for v in value))
    if not isinstance(value, dict):
        return set()
    if set(value) == {"Ref"} and value["Ref"] in resources:
        return {value["Ref"]}
    if set(value) == {"Fn::GetAtt"}:
        return {value["Fn::GetAtt"][0]}
    return set().union(*(_references(v, resources) for v in value.values()))


def test_twenty_consumers_are_created_at_most_five_at_a_time(wide_template: Template) -> None:
    waits_for = _consumer_dependencies(wide_template)
    assert len(waits_for) == MAX_STREAM_CONSUMERS

    def independent(group: tuple[str, ...]) -> bool:
        return all(a not in waits_for[b] and b not in waits_for[a]
                   for a, b in itertools.combinations(group, 2))

    # CloudFormation may run any set of mutually independent resources at once: no 6 consumers
    # may be independent of each other, while 5 are (creation stays parallel).
    limit = CONSUMERS_CREATING_AT_ONCE
    assert not any(independent(g) for g in itertools.combinations(sorted(waits_for), limit + 1))
    assert any(independent(g) for g in itertools.combinations(sorted(waits_for), limit))


def test_each_group_of_five_waits_until_the_previous_group_is_active(
    wide_template: Template,
) -> None:
    """Issue 21 finding 3: CREATE_COMPLETE is not ACTIVE (aws-cdk PR #37108), so consumer
    ``i`` depending on consumer ``i - 5`` (today's chain) cannot keep a 6th registration from
    LimitExceededException. Every consumer after the first 5 waits for a
    ``Custom::StreamConsumersActive`` listing exactly the 5 consumers before its group."""
    consumers = list(_of_type(wide_template, "AWS::Kinesis::StreamConsumer"))
    waiters = _of_type(wide_template, WAITER_RESOURCE_TYPE)
    groups = [consumers[i:i + CONSUMERS_CREATING_AT_ONCE]
              for i in range(0, len(consumers), CONSUMERS_CREATING_AT_ONCE)]
    assert len(waiters) == len(groups) - 1
    for earlier, later in itertools.pairwise(groups):
        (waiter_id,) = {d for c in later for d in _depends_on(wide_template["Resources"][c])}
        waiter = waiters[waiter_id]
        listed = [arn["Fn::GetAtt"] for arn in waiter["Properties"]["ConsumerArns"]]
        assert listed == [[c, "ConsumerARN"] for c in earlier]
        token = waiter["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
        assert wide_template["Resources"][token]["Type"] == "AWS::Lambda::Function"


def test_the_waiter_polls_describe_stream_consumer_with_inline_code(
    wide_template: Template,
) -> None:
    """Packaged without Docker or an asset: inline Python (boto3 from the Lambda runtime),
    allowed DescribeStreamConsumer, polled by the provider's state machine."""
    functions = _of_type(wide_template, "AWS::Lambda::Function")
    waiters = [f for f in functions.values()
               if f["Properties"].get("Handler") in ("index.on_event", "index.is_complete")]
    assert len(waiters) == 2
    for function in waiters:
        assert "ZipFile" in function["Properties"]["Code"]
        assert "describe_stream_consumer" in function["Properties"]["Code"]["ZipFile"]
    policies = json.dumps(_of_type(wide_template, "AWS::IAM::Policy"))
    assert "kinesis:DescribeStreamConsumer" in policies
    (machine,) = _of_type(wide_template, "AWS::StepFunctions::StateMachine").values()
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"


def test_every_mapping_still_waits_for_its_own_consumer(wide_template: Template) -> None:
    consumers = _of_type(wide_template, "AWS::Kinesis::StreamConsumer")
    mappings = _of_type(wide_template, "AWS::Lambda::EventSourceMapping").values()
    assert len(mappings) == MAX_STREAM_CONSUMERS
    for mapping in mappings:
        source = json.dumps(mapping["Properties"]["EventSourceArn"])
        assert any(f'"{cid}"' in source for cid in consumers)


# --- the variants stay lint-clean (the dev template is linted in test_infra_lint.py) -------------

def test_cfn_lint_reports_nothing_on_prod_and_the_wide_stack(
    templates: dict[str, Template], wide_template: Template, tmp_path: Path
) -> None:
    from cfnlint.api import ManualArgs, lint_file

    for name, template in (("prod", templates["prod"]), ("wide", wide_template)):
        path = tmp_path / f"{name}.template.json"
        path.write_text(json.dumps(template))
        matches = lint_file(path, config=ManualArgs(regions=["us-east-1"]))
        assert [str(m) for m in matches] == [], name
