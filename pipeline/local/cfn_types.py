"""Per resource type: physical names, and what Ref and Fn::GetAtt return.

As the CloudFormation resource reference documents them
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-template-resource-type-ref.html).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.aws.arns import consumer_arn
from pipeline.aws.limits import KINESIS_ON_DEMAND_INITIAL_SHARDS

if TYPE_CHECKING:
    from pipeline.local.cfn import Resolver

URL_SUFFIX = "amazonaws.com"
# CloudFormation truncates generated names to the service's limit.
_NAME_LIMITS = {
    "AWS::Lambda::Function": 64,
    "AWS::SQS::Queue": 80,
    "AWS::IAM::Role": 64,
    "AWS::Kinesis::Stream": 128,
    "AWS::DynamoDB::Table": 255,
    "AWS::DynamoDB::GlobalTable": 255,
}
NAME_PROPERTY = {
    "AWS::Kinesis::Stream": "Name",
    "AWS::Kinesis::StreamConsumer": "ConsumerName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::ApiGatewayV2::Stage": "StageName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
}



def token(stack: str, logical_id: str, length: int, alphabet: str) -> str:
    digest = hashlib.sha256(f"{stack}/{logical_id}".encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"


def generated_name(stack: str, logical_id: str, resource_type: str) -> str:
    """A CloudFormation-like physical name: ``<StackName>-<LogicalId>-<RANDOM>``."""
    suffix = token(stack, logical_id, 12, UPPER)
    limit = _NAME_LIMITS.get(resource_type, 128)
    head = f"{stack}-{logical_id}"[: limit - len(suffix) - 1]
    return f"{head}-{suffix}"



def identity_for(
    r: Resolver, lid: str, rtype: str, props: Mapping[str, Any], name: Any
) -> tuple[str, dict[str, str]]:
    """Ref and attributes per type, as the CloudFormation resource reference documents them."""
    stack = r.stack_name
    physical = str(name) if name else generated_name(stack, lid, rtype)
    short_id = token(stack, lid, 10, LOWER)
    if rtype == "AWS::Kinesis::Stream":
        return physical, {"Arn": r.arn("kinesis", f"stream/{physical}")}
    if rtype == "AWS::Kinesis::StreamConsumer":
        stream_arn = str(r.resolve(props.get("StreamARN", "")))
        consumer = str(name) if name else lid
        # AWS's shape: ".../consumer/<name>:<creation epoch seconds>"; provisioning registers
        # the consumer with this epoch, so the functions and the twin's Kinesis agree.
        arn = consumer_arn(stream_arn, consumer, r.created)
        attrs = {"ConsumerARN": arn, "ConsumerName": consumer, "StreamARN": stream_arn,
                 "ConsumerStatus": "ACTIVE", "ConsumerCreationTimestamp": str(r.created)}
        return arn, attrs
    if rtype in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
        arn = r.arn("dynamodb", f"table/{physical}")
        return physical, {"Arn": arn, "StreamArn": f"{arn}/stream/1970-01-01T00:00:00.000",
                          "TableId": token(stack, lid, 10, LOWER)}
    if rtype == "AWS::SQS::Queue":
        if props.get("FifoQueue") and not name:
            physical = physical[:75] + ".fifo"
        url = f"https://sqs.{r.region}.{URL_SUFFIX}/{r.account_id}/{physical}"
        return url, {"Arn": r.arn("sqs", physical), "QueueName": physical, "QueueUrl": url}
    if rtype == "AWS::Lambda::Function":
        return physical, {"Arn": r.arn("lambda", f"function:{physical}")}
    if rtype == "AWS::Lambda::LayerVersion":
        arn = r.arn("lambda", f"layer:{physical}:1")
        return arn, {"LayerVersionArn": arn}
    if rtype == "AWS::IAM::Role":
        return physical, {"Arn": r.arn("iam", f"role/{physical}", region=False),
                          "RoleId": "AROA" + token(stack, lid, 17, UPPER)}
    if rtype == "AWS::ApiGatewayV2::Api":
        proto = "wss" if props.get("ProtocolType") == "WEBSOCKET" else "https"
        endpoint = f"{proto}://{short_id}.execute-api.{r.region}.{URL_SUFFIX}"
        return short_id, {"ApiId": short_id, "ApiEndpoint": endpoint}
    if rtype == "AWS::ApiGatewayV2::Stage":
        return physical, {}
    if rtype.startswith("AWS::ApiGatewayV2::"):
        kind = rtype.rsplit("::", 1)[1]
        return short_id[:7], {f"{kind}Id": short_id[:7]}
    if rtype == "AWS::Lambda::EventSourceMapping":
        uuid = hashlib.md5(f"{stack}/{lid}".encode()).hexdigest()
        uid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
        return uid, {"Id": uid,
                     "EventSourceMappingArn": r.arn("lambda", f"event-source-mapping:{uid}")}
    if rtype == "AWS::SecretsManager::Secret":
        arn = r.arn("secretsmanager", f"secret:{physical}-{token(stack, lid, 6, LOWER)}")
        return arn, {"Id": arn}
    if rtype == "AWS::Logs::LogGroup":
        return physical, {"Arn": r.arn("logs", f"log-group:{physical}:*")}
    if rtype == "AWS::Cognito::UserPool":
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-cognito-userpool.html
        pool = f"{r.region}_{token(stack, lid, 9, UPPER + LOWER)}"
        provider = f"cognito-idp.{r.region}.{URL_SUFFIX}/{pool}"
        return pool, {"Arn": r.arn("cognito-idp", f"userpool/{pool}"),
                      "ProviderName": provider, "ProviderURL": f"https://{provider}",
                      "UserPoolId": pool}
    if rtype == "AWS::Cognito::UserPoolClient":
        client_id = token(stack, lid, 26, LOWER)
        return client_id, {"ClientId": client_id, "Name": physical}
    if rtype == "AWS::KMS::Key":
        key = hashlib.md5(f"{stack}/{lid}".encode()).hexdigest()
        return key, {"Arn": r.arn("kms", f"key/{key}"), "KeyId": key}
    service = rtype.split("::")[1].lower() if rtype.count("::") == 2 else "unknown"
    return physical, {"Arn": r.arn(service, physical)}






def stream_is_on_demand(properties: Mapping[str, Any]) -> bool:
    """Whether an ``AWS::Kinesis::Stream`` declares ``StreamMode: ON_DEMAND``."""
    details = properties.get("StreamModeDetails") or {}
    return isinstance(details, Mapping) and details.get("StreamMode") == "ON_DEMAND"


def stream_shard_count(properties: Mapping[str, Any]) -> int:
    """The shards an ``AWS::Kinesis::Stream`` starts with: its ``ShardCount``, or AWS's initial
    count for an on-demand stream (which declares none)."""
    if stream_is_on_demand(properties):
        return KINESIS_ON_DEMAND_INITIAL_SHARDS
    return int(properties.get("ShardCount", 1))
