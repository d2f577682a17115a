"""Template resolution: each intrinsic on small templates, then the real synthesized stack."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.local.cfn import CfnError, generated_name, load_template, resolve_stack

STACK = "WebSocketPipeline-dev"


def _resolve(resources: dict[str, Any], **extra: Any) -> dict[str, Any]:
    template = {"Resources": resources, **extra}
    stack = resolve_stack(template, STACK, Path("/asm"))
    return {lid: r.properties for lid, r in stack.resources.items()}


def _probe(value: Any, **extra: Any) -> Any:
    props = _resolve(
        {
            "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"Name": "events"}},
            "Probe": {"Type": "AWS::SSM::Parameter", "Properties": {"Value": value}},
        },
        **extra,
    )
    return props["Probe"]["Value"]


def test_ref_and_getatt_of_a_named_stream() -> None:
    assert _probe({"Ref": "Stream"}) == "events"
    assert _probe({"Fn::GetAtt": ["Stream", "Arn"]}) == (
        "arn:aws:kinesis:us-east-1:123456789012:stream/events"
    )
    assert _probe({"Fn::GetAtt": "Stream.Arn"}).endswith(":stream/events")


def test_pseudo_parameters() -> None:
    assert _probe({"Ref": "AWS::Region"}) == "us-east-1"
    assert _probe({"Ref": "AWS::AccountId"}) == "123456789012"
    assert _probe({"Ref": "AWS::Partition"}) == "aws"
    assert _probe({"Ref": "AWS::URLSuffix"}) == "amazonaws.com"
    assert _probe({"Ref": "AWS::StackName"}) == STACK


def test_join_select_split() -> None:
    assert _probe({"Fn::Join": ["-", ["a", {"Ref": "Stream"}, "b"]]}) == "a-events-b"
    assert _probe({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    with pytest.raises(CfnError, match="out of range"):
        _probe({"Fn::Select": [5, ["a"]]})


def test_sub_both_forms_and_escape() -> None:
    assert _probe({"Fn::Sub": "${AWS::Region}/${Stream}/${Stream.Arn}"}) == (
        "us-east-1/events/arn:aws:kinesis:us-east-1:123456789012:stream/events"
    )
    assert _probe({"Fn::Sub": ["${X}-${Stream}", {"X": {"Ref": "AWS::AccountId"}}]}) == (
        "123456789012-events"
    )
    assert _probe({"Fn::Sub": "${!Literal}"}) == "${Literal}"


def test_if_conditions_and_novalue() -> None:
    conditions = {
        "IsProd": {"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
        "Both": {"Fn::And": [{"Condition": "NotProd"}, {"Fn::Or": [True, False]}]},
    }
    assert _probe({"Fn::If": ["IsProd", "p", "d"]}, Conditions=conditions) == "d"
    assert _probe({"Fn::If": ["Both", "yes", "no"]}, Conditions=conditions) == "yes"
    props = _resolve(
        {"P": {"Type": "AWS::SSM::Parameter",
               "Properties": {"A": {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]}}},
         "Gone": {"Type": "AWS::SSM::Parameter", "Condition": "IsProd", "Properties": {}}},
        Conditions=conditions,
    )
    assert props == {"P": {}}


def test_generated_names_are_cloudformation_like_and_stable() -> None:
    props = _resolve({
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        "P": {"Type": "AWS::SSM::Parameter", "Properties": {"V": {"Ref": "Table"}}},
    })
    name = props["P"]["V"]
    assert re.fullmatch(rf"{STACK}-Table-[A-Z0-9]{{12}}", name)
    assert name == generated_name(STACK, "Table", "AWS::DynamoDB::Table")
    fn = generated_name(STACK, "A" * 80, "AWS::Lambda::Function")
    assert len(fn) == 64


def test_ref_values_per_type() -> None:
    stack = resolve_stack({"Resources": {
        "Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "dlq"}},
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "WEBSOCKET"}},
        "St": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {"StageName": "dev"}},
        "S": {"Type": "AWS::Kinesis::Stream", "Properties": {"Name": "s"}},
        "C": {"Type": "AWS::Kinesis::StreamConsumer",
              "Properties": {"ConsumerName": "echo", "StreamARN": {"Fn::GetAtt": ["S", "Arn"]}}},
        "F": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "f"}},
    }}, STACK, Path("/asm"))
    r = stack.resources
    assert r["Q"].ref == "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
    assert r["Q"].attributes["Arn"] == "arn:aws:sqs:us-east-1:123456789012:dlq"
    assert re.fullmatch(r"[a-z0-9]{10}", r["Api"].ref)
    assert r["Api"].attributes["ApiEndpoint"] == (
        f"wss://{r['Api'].ref}.execute-api.us-east-1.amazonaws.com"
    )
    assert r["St"].ref == "dev"
    assert re.fullmatch(r"arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/echo:\d{10}",
                        r["C"].ref)  # AWS's shape: the creation epoch last
    assert r["C"].attributes["ConsumerCreationTimestamp"] == r["C"].ref.rsplit(":", 1)[1]
    assert r["F"].attributes["Arn"] == "arn:aws:lambda:us-east-1:123456789012:function:f"
    assert stack.by_ref("AWS::Lambda::Function", r["F"].attributes["Arn"]) is r["F"]


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CfnError, match="unknown logical id or parameter 'Nope'"):
        _probe({"Ref": "Nope"})
    with pytest.raises(CfnError, match="unsupported intrinsic Fn::Transmogrify"):
        _probe({"Fn::Transmogrify": 1})
    with pytest.raises(CfnError, match="circular"):
        _resolve({"A": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "A"}}}})
    with pytest.raises(CfnError, match="synthesize first"):
        load_template(tmp_path, STACK)


def test_asset_path_from_metadata() -> None:
    stack = resolve_stack({"Resources": {"F": {
        "Type": "AWS::Lambda::Function", "Metadata": {"aws:asset:path": "asset.abc"},
        "Properties": {"Code": {"S3Bucket": {"Fn::Sub": "cdk-${AWS::AccountId}"}, "S3Key": "x.zip"}},
    }}}, STACK, Path("/asm"))
    assert stack.asset_path("F") == Path("/asm/asset.abc")
    assert stack.resources["F"].properties["Code"]["S3Bucket"] == "cdk-123456789012"


@pytest.mark.synth
def test_the_synthesized_stack_resolves(stack_template: dict[str, Any], cloud_assembly: Path) -> None:
    stack = resolve_stack(stack_template, STACK, cloud_assembly)
    streams = stack.of_type("AWS::Kinesis::Stream")
    assert len(streams) == 1
    functions = stack.of_type("AWS::Lambda::Function")
    consumers = [f for f in functions if "STREAM_NAME" in
                 f.properties.get("Environment", {}).get("Variables", {})]
    assert len(consumers) >= 4
    for fn in consumers:
        env = fn.properties["Environment"]["Variables"]
        assert env["STREAM_NAME"] == streams[0].ref
        asset = stack.asset_path(fn.logical_id)
        assert asset is not None and (asset / "handler.py").is_file()
    mappings = stack.of_type("AWS::Lambda::EventSourceMapping")
    consumer_arns = {c.ref for c in stack.of_type("AWS::Kinesis::StreamConsumer")}
    assert mappings and all(m.properties["EventSourceArn"] in consumer_arns for m in mappings)
    assert not any("{" in str(v) for m in mappings for v in m.properties.values()
                   if isinstance(v, str))
