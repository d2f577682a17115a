"""How the twin runs a consumer, for ``python -m pipeline redrive`` against the twin.

The redrive tool finds a deployed consumer through CloudFormation and Lambda; against the twin it
asks this module (looked up by name, so the tool does not depend on the twin): the template the
twin reads, resolved as the twin resolves it, and the environment and credentials the twin gives
the function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

from pipeline.aws.limits import REGION
from pipeline.local.cfn import CfnError, Resource, load_template, resolve_stack
from pipeline.local.esm import MappingConfig
from pipeline.local.iam.access import function_access_key, function_secret_key
from pipeline.local.workers import rewrite_environment
from pipeline.names import CONSUMER_TAG, TWIN_PORT, stack_name, twin_connections_url
from pipeline.redrive import RedriveError
from pipeline.redrive.target import Target


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="redrive", aws_secret_access_key="redrive")


def consumer_tag(resource: Resource) -> str | None:
    """The consumer a function is tagged with (:data:`pipeline.names.CONSUMER_TAG`), if any."""
    for tag in resource.properties.get("Tags", []):
        if isinstance(tag, dict) and tag.get("Key") == CONSUMER_TAG:
            return str(tag.get("Value"))
    return None


def from_twin(consumer: str, *, assembly: Path, stage: str, aws_endpoint: str,
              connections_url: str | None) -> Target:
    """The consumer as the running twin serves it (the template the twin reads)."""
    name = stack_name(stage)
    try:
        stack = resolve_stack(load_template(assembly, name), name, assembly)
    except (CfnError, OSError) as exc:
        raise RedriveError(f"cannot read {assembly}/{name}.template.json: {exc}") from exc
    functions = [r for r in stack.of_type("AWS::Lambda::Function") if consumer_tag(r) == consumer]
    if not functions:
        raise RedriveError(f"no function tagged {CONSUMER_TAG}={consumer} in {name}")
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
    env = rewrite_environment(
        variables, connections_url=connections_url or twin_connections_url(stage, TWIN_PORT))
    # The handler runs here as the function does in the twin: its role's credentials.
    env.update({"AWS_ENDPOINT_URL": aws_endpoint, "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": function_access_key(function.ref),
                "AWS_SECRET_ACCESS_KEY": function_secret_key(function.ref),
                "AWS_SESSION_TOKEN": "twin", "AWS_LAMBDA_FUNCTION_NAME": function.ref})
    return Target(
        consumer, function.ref,
        sqs.get_queue_url(QueueName=queue.attributes["QueueName"])["QueueUrl"], stream.ref,
        mapping.filters, env, float(function.properties.get("Timeout", 3)),
        {"sqs": sqs, "kinesis": _client("kinesis", aws_endpoint)},
    )
