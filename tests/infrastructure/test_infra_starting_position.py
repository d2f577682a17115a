"""Changing a consumer's startingPosition deploys (issue 21, finding 4).

``StartingPosition`` is create-only on the mapping; its replacement is created before the old
mapping is deleted, and Lambda refuses two mappings of one function to one event source. The
consumer's name carries the starting position, so the change gives the mapping a new event
source (a new stream consumer) too. Built in a bare stack, one ConsumerService per variant.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from pipeline.infrastructure.consumer_service import ConsumerService, stream_consumer_name
from pipeline.registry import ConsumerSpec, StartingPosition, load_spec

pytestmark = pytest.mark.synth
STACK = "WebSocketPipeline-dev"


def _echo(position: StartingPosition) -> ConsumerSpec:
    return dataclasses.replace(load_spec("echo"), starting_position=position)


def _template(spec: ConsumerSpec) -> Template:
    stack = Stack(App(), "Consumer")
    stream = kinesis.Stream(stack, "Stream", shard_count=1)
    api = apigwv2.WebSocketApi(stack, "Api")
    table = dynamodb.TableV2(stack, "Roster", partition_key=dynamodb.Attribute(
        name="pk", type=dynamodb.AttributeType.STRING))
    layer = lambda_.LayerVersion.from_layer_version_arn(
        stack, "Layer", "arn:aws:lambda:us-east-1:123456789012:layer:runtime:1")
    ConsumerService(stack, "Consumer-echo", spec=spec, stream=stream, api=api,
                    connections_url="https://example.invalid/dev", table=table, layer=layer,
                    stream_consumer_name=stream_consumer_name(STACK, spec))
    return Template.from_stack(stack)


def _consumer_and_mapping(template: Template) -> tuple[str, dict[str, Any], dict[str, Any]]:
    ((consumer_id, consumer),) = template.find_resources("AWS::Kinesis::StreamConsumer").items()
    (mapping,) = template.find_resources("AWS::Lambda::EventSourceMapping").values()
    return consumer_id, consumer["Properties"], mapping["Properties"]


def test_latest_keeps_the_name_deployed_stacks_have() -> None:
    assert stream_consumer_name(STACK, _echo("LATEST")) == "WebSocketPipeline-dev-echo"


def test_a_starting_position_change_gives_the_mapping_a_new_event_source() -> None:
    names = {}
    for position in ("LATEST", "TRIM_HORIZON"):
        consumer_id, consumer, mapping = _consumer_and_mapping(_template(_echo(position)))
        assert mapping["StartingPosition"] == position
        # The mapping reads the consumer: a new consumer is a new EventSourceArn.
        assert mapping["EventSourceArn"] == {"Fn::GetAtt": [consumer_id, "ConsumerARN"]}
        names[position] = consumer["ConsumerName"]
    assert names["LATEST"] != names["TRIM_HORIZON"]
    assert names["TRIM_HORIZON"] == "WebSocketPipeline-dev-echo-trim-horizon"
