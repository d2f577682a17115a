"""The AWS managed policies CDK attaches, encoded from their documented versions.

https://docs.aws.amazon.com/aws-managed-policy/latest/reference/policy-list.html
An unknown managed policy allows nothing (the caller logs a warning once).
"""

from __future__ import annotations

from typing import Any

_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]


def _allow(actions: list[str], resource: str = "*") -> dict[str, Any]:
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]}


MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html
    "service-role/AWSLambdaBasicExecutionRole": _allow(_LOGS),
    # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaKinesisExecutionRole.html
    "service-role/AWSLambdaKinesisExecutionRole": _allow([
        "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
        "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:ListStreams",
        "kinesis:SubscribeToShard", *_LOGS,
    ]),
    # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaDynamoDBExecutionRole.html
    "service-role/AWSLambdaDynamoDBExecutionRole": _allow([
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
        "dynamodb:ListStreams", *_LOGS,
    ]),
    # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaSQSQueueExecutionRole.html
    "service-role/AWSLambdaSQSQueueExecutionRole": _allow([
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", *_LOGS,
    ]),
    # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaVPCAccessExecutionRole.html
    "service-role/AWSLambdaVPCAccessExecutionRole": _allow([
        *_LOGS, "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ]),
    # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonAPIGatewayPushToCloudWatchLogs.html
    "service-role/AmazonAPIGatewayPushToCloudWatchLogs": _allow([
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups",
        "logs:DescribeLogStreams", "logs:PutLogEvents", "logs:GetLogEvents",
        "logs:FilterLogEvents",
    ]),
}


def managed_policy(arn: str) -> dict[str, Any] | None:
    """The document of an AWS managed policy by ARN (``arn:aws:iam::aws:policy/<path>``)."""
    if ":iam::aws:policy/" not in arn:
        return None
    return MANAGED_POLICIES.get(arn.split(":iam::aws:policy/", 1)[1])
