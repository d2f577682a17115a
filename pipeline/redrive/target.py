"""Where a consumer's failed records are and how its function runs: queue, stream, filters,
environment. On AWS from CloudFormation and Lambda (:func:`from_aws`); the local twin describes its
own consumers (its ``redrive_target`` module: how the twin runs a function is the twin's)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from pipeline.names import CONSUMER_TAG
from pipeline.redrive import RedriveError
from pipeline.registry import consumer_handler


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


def _client(service: str) -> Any:
    return boto3.client(service)


def from_aws(consumer: str, *, stack_name: str) -> Target:
    """The consumer of a deployed stage, found through CloudFormation and Lambda."""
    cfn, lam, sqs = _client("cloudformation"), _client("lambda"), _client("sqs")
    # The stack tags each consumer's function with its name (pipeline.names.CONSUMER_TAG).
    functions = [r["PhysicalResourceId"]
                 for page in cfn.get_paginator("list_stack_resources").paginate(
                     StackName=stack_name)
                 for r in page["StackResourceSummaries"]
                 if r["ResourceType"] == "AWS::Lambda::Function"]
    tagged = [f for f in functions
              if lam.get_function(FunctionName=f).get("Tags", {}).get(CONSUMER_TAG) == consumer]
    if not tagged:
        raise RedriveError(f"no function tagged {CONSUMER_TAG}={consumer} in stack {stack_name}")
    function = tagged[0]
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
        {"sqs": sqs, "kinesis": _client("kinesis")},
    )
