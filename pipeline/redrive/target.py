"""Where a consumer's failed records are and how its function runs: queue, stream, filters,
environment. From the synthesized template on the twin; from CloudFormation and Lambda on AWS."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from pipeline.aws.limits import REGION
from pipeline.redrive import RedriveError
from pipeline.registry import consumer_handler

TWIN_REGION = REGION  # the twin's region (pipeline/aws/limits.py)
TWIN_GATEWAY_PORT = 8080  # `python -m pipeline local`'s default WebSocket/@connections port


@dataclass
class Target:
    """One consumer's on-failure queue, its stream and its function's settings."""

    consumer: str
    function_name: str
    queue_url: str
    stream_name: str
    filters: tuple[dict[str, Any], ...]
    environment: dict[str, str]
    timeout_s: float
    clients: dict[str, Any] = field(default_factory=dict)  # boto3 clients for sqs and kinesis

    @property
    def handler_path(self) -> Path:
        return consumer_handler(self.consumer)


def _client(service: str, endpoint: str | None) -> Any:
    if endpoint is None:
        return boto3.client(service)
    return boto3.client(service, endpoint_url=endpoint, region_name=TWIN_REGION,
                        aws_access_key_id="redrive", aws_secret_access_key="redrive")


def from_twin(consumer: str, *, assembly: Path, stage: str, aws_endpoint: str,
              connections_url: str | None) -> Target:
    """The consumer as the running twin serves it (the template the twin reads)."""
    from pipeline.local.cfn import CfnError, load_template, resolve_stack
    from pipeline.local.esm import MappingConfig
    from pipeline.local.iam.access import function_access_key, function_secret_key
    from pipeline.local.workers import rewrite_environment

    name = f"WebSocketPipeline-{stage}"
    try:
        stack = resolve_stack(load_template(assembly, name), name, assembly)
    except (CfnError, OSError) as exc:
        raise RedriveError(f"cannot read {assembly}/{name}.template.json: {exc}") from exc
    suffix = f"/Consumer-{consumer}/Function/Resource"
    functions = [r for r in stack.of_type("AWS::Lambda::Function")
                 if str(r.metadata.get("aws:cdk:path", "")).endswith(suffix)]
    if not functions:
        raise RedriveError(f"no consumer {consumer!r} in {name}")
    function = functions[0]
    mappings = [r for r in stack.of_type("AWS::Lambda::EventSourceMapping")
                if str(r.properties.get("FunctionName", "")).rsplit(":", 1)[-1] == function.ref]
    if not mappings:
        raise RedriveError(f"consumer {consumer!r} has no event source mapping")
    mapping = MappingConfig.from_cfn(mappings[0].properties, logical_id=mappings[0].logical_id)
    queue = stack.by_ref("AWS::SQS::Queue", mapping.on_failure_destination_arn or "")
    stream_consumer = stack.by_ref("AWS::Kinesis::StreamConsumer", mapping.event_source_arn)
    stream = stack.by_ref("AWS::Kinesis::Stream", stream_consumer.attributes["StreamARN"]
                          if stream_consumer else mapping.event_source_arn)
    if queue is None or stream is None:
        raise RedriveError(f"consumer {consumer!r}: no on-failure queue or stream in {name}")
    sqs = _client("sqs", aws_endpoint)
    variables = function.properties.get("Environment", {}).get("Variables", {})
    env = rewrite_environment(variables, gateway_port=TWIN_GATEWAY_PORT, aws_url=aws_endpoint)
    if connections_url:
        env["CONNECTIONS_ENDPOINT_URL"] = connections_url
    # The handler runs here as the function does in the twin: its role's credentials.
    env.update({"AWS_ENDPOINT_URL": aws_endpoint, "AWS_REGION": TWIN_REGION,
                "AWS_DEFAULT_REGION": TWIN_REGION,
                "AWS_ACCESS_KEY_ID": function_access_key(function.ref),
                "AWS_SECRET_ACCESS_KEY": function_secret_key(function.ref),
                "AWS_SESSION_TOKEN": "twin", "AWS_LAMBDA_FUNCTION_NAME": function.ref})
    return Target(
        consumer, function.ref,
        sqs.get_queue_url(QueueName=queue.attributes["QueueName"])["QueueUrl"], stream.ref,
        mapping.filters, env, float(function.properties.get("Timeout", 3)),
        {"sqs": sqs, "kinesis": _client("kinesis", aws_endpoint)},
    )


def from_aws(consumer: str, *, stack_name: str) -> Target:
    """The consumer of a deployed stage, found through CloudFormation and Lambda."""
    cfn, lam, sqs = _client("cloudformation", None), _client("lambda", None), _client("sqs", None)
    prefix = "Consumer" + re.sub(r"[^A-Za-z0-9]", "", consumer) + "Function"
    functions = [r["PhysicalResourceId"]
                 for page in cfn.get_paginator("list_stack_resources").paginate(
                     StackName=stack_name)
                 for r in page["StackResourceSummaries"]
                 if r["ResourceType"] == "AWS::Lambda::Function"
                 and r["LogicalResourceId"].startswith(prefix)]
    if not functions:
        raise RedriveError(f"no consumer {consumer!r} in stack {stack_name}")
    function = functions[0]
    mappings = lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    if not mappings:
        raise RedriveError(f"consumer {consumer!r} has no event source mapping")
    m = mappings[0]
    queue_arn = m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "")
    if not queue_arn:
        raise RedriveError(f"consumer {consumer!r} has no on-failure destination")
    # An enhanced fan-out consumer ARN: arn:...:stream/<stream>/consumer/<name>:<epoch>
    stream_name = m["EventSourceArn"].split(":stream/", 1)[1].split("/", 1)[0]
    filters = tuple(json.loads(f["Pattern"])
                    for f in m.get("FilterCriteria", {}).get("Filters", []))
    config = lam.get_function_configuration(FunctionName=function)
    env = dict(config.get("Environment", {}).get("Variables", {}))
    return Target(
        consumer, function, sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"],
        stream_name, filters, env, float(config.get("Timeout", 3)),
        {"sqs": sqs, "kinesis": _client("kinesis", None)},
    )
