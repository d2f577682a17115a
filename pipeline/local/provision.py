"""Provisioning: the template's streams and stream consumers in the twin's Kinesis, its tables,
queues and secrets in moto.

Streams, consumers and the consumers-ACTIVE waiters (``Custom::StreamConsumersActive``) are
created in the template's dependency order (DependsOn, Ref, GetAtt), each as soon as what it
depends on is complete, as CloudFormation does. Like CloudFormation's
``AWS::Kinesis::StreamConsumer`` (aws-cdk PR #37108), a consumer counts as created while it is
still CREATING, so a 6th registration in a row fails as on AWS unless a waiter stands between
the groups; the twin runs the waiter itself (what its ``isComplete`` does: poll
DescribeStreamConsumer until ACTIVE) instead of the provider's functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from moto.backends import get_backend

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.cfn import Resource, Stack
from pipeline.local.cfn_types import stream_is_on_demand, stream_shard_count
from pipeline.local.ddb_query import index_queries
from pipeline.local.errors import ServicesError

if TYPE_CHECKING:
    from pipeline.local.kinesis import KinesisBackend
    from pipeline.local.services import AwsServices

WAITER_RESOURCE_TYPE = "Custom::StreamConsumersActive"  # pipeline.infrastructure's waiter
WAITER_POLL_S = 0.02  # the twin's query interval (AWS: 10 s, consumer_activation)
WAITER_MARGIN_S = 10.0  # beyond the activation delay, the waiter gives up


def provision(services: AwsServices, stack: Stack,
              only: Collection[str] | None = None) -> None:
    """Create the stack's streams, consumers, tables, queues and secrets in *services* (*only*:
    just these logical ids, e.g. what a running twin's reload adds)."""
    kinesis, ddb = services.kinesis, services.client("dynamodb")
    for res in stack.creation_order():
        if only is not None and res.logical_id not in only:
            continue
        p = res.properties
        if res.type == "AWS::Kinesis::Stream":
            if stream_is_on_demand(p):  # Kinesis picks the shards of an on-demand stream
                kinesis.create_stream(res.ref, mode="ON_DEMAND")
            else:
                kinesis.create_stream(res.ref, stream_shard_count(p))
        elif res.type == "AWS::Kinesis::StreamConsumer":
            # with the creation epoch the template resolver put in the ARN the functions got
            kinesis.register_stream_consumer(
                p["StreamARN"], p["ConsumerName"],
                created=int(res.attributes["ConsumerCreationTimestamp"]))
        elif res.type == WAITER_RESOURCE_TYPE:
            wait_until_active(kinesis, [str(a) for a in p.get("ConsumerArns", [])])
    tables = stack.of_type("AWS::DynamoDB::Table") + stack.of_type("AWS::DynamoDB::GlobalTable")
    for res in tables:
        if only is None or res.logical_id in only:
            _create_table(ddb, res)
            index_queries(services.dynamodb.get_table(res.ref))
    sqs = services.client("sqs")
    for res in stack.of_type("AWS::SQS::Queue"):
        if only is not None and res.logical_id not in only:
            continue
        attrs = {k: str(v) for k, v in res.properties.items()
                 if k in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                          "FifoQueue", "ReceiveMessageWaitTimeSeconds")}
        sqs.create_queue(QueueName=res.attributes["QueueName"], Attributes=attrs)
    for res in stack.of_type("AWS::SecretsManager::Secret"):
        if only is None or res.logical_id in only:
            _create_secret(res)

def wait_until_active(kinesis: KinesisBackend, arns: Sequence[str], *,
                      sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once every consumer of ``arns`` is ACTIVE; ServicesError past the deadline
    (the waiter's total timeout)."""
    deadline = kinesis.clock() + kinesis.consumer_activation_s + WAITER_MARGIN_S
    while True:
        pending = [a for a in arns if kinesis.consumer(consumer_arn=a).status != "ACTIVE"]
        if not pending:
            return
        if kinesis.clock() >= deadline:
            raise ServicesError(f"{WAITER_RESOURCE_TYPE}: still not ACTIVE: {pending}")
        sleep(WAITER_POLL_S)


def _create_secret(res: Resource) -> None:
    sm: Any = get_backend("secretsmanager")[ACCOUNT_ID][REGION]
    name = res.ref.split(":secret:", 1)[1].rsplit("-", 1)[0]
    p = res.properties
    value = p.get("SecretString")
    if value is None:
        value = generate_secret_string(p.get("GenerateSecretString") or {})
    sm.create_secret(name=name, secret_string=str(value), secret_binary=None,
                     description=p.get("Description"), tags=None, kms_key_id=None,
                     client_request_token=None, replica_regions=[], force_overwrite=False)
    # moto draws its own random ARN suffix; the functions were given the template's ARN.
    sm.secrets[name].arn = res.ref

def _create_table(ddb: Any, res: Resource) -> None:
    p = res.properties
    kwargs: dict[str, Any] = {
        "TableName": res.ref,
        "KeySchema": p["KeySchema"],
        "AttributeDefinitions": p["AttributeDefinitions"],
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in p:
        kwargs["ProvisionedThroughput"] = p["ProvisionedThroughput"]
    elif kwargs["BillingMode"] == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in p:
            kwargs[key] = p[key]
    ddb.create_table(**kwargs)
    ttl = p.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=res.ref,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )


def generate_secret_string(spec: dict[str, Any]) -> str:
    """A value for ``GenerateSecretString`` (length, exclusions, optional JSON template).
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-secretsmanager-secret-generatesecretstring.html
    """
    import json
    import secrets
    import string

    alphabet = ""
    if not spec.get("ExcludeLowercase"):
        alphabet += string.ascii_lowercase
    if not spec.get("ExcludeUppercase"):
        alphabet += string.ascii_uppercase
    if not spec.get("ExcludeNumbers"):
        alphabet += string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    if spec.get("IncludeSpace"):
        alphabet += " "
    excluded = str(spec.get("ExcludeCharacters", ""))
    alphabet = "".join(c for c in alphabet if c not in excluded) or string.ascii_letters
    length = int(spec.get("PasswordLength", 32))
    value = "".join(secrets.choice(alphabet) for _ in range(length))
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template and key:
        doc = json.loads(str(template))
        doc[str(key)] = value
        return json.dumps(doc)
    return value
