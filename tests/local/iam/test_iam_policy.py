"""The policy evaluator and the request-to-IAM mapping, with no I/O."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pipeline.local.iam import PolicyDecision, PolicyError, evaluate, parse_policy
from pipeline.local.iam.access import AccessControl, function_access_key
from pipeline.local.iam.errors import Denial, denied_message
from pipeline.local.iam.managed import managed_policy
from pipeline.local.iam.requests import Credential, checks_for, denied_body, iam_request

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/events"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/roster"


def _policy(*statements: dict[str, Any]) -> Any:
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)})


def test_allow_matches_action_and_resource_else_implicit_deny() -> None:
    policy = _policy({"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": STREAM})
    assert evaluate(policy, "kinesis:PutRecord", STREAM) is PolicyDecision.ALLOW
    assert evaluate(policy, "kinesis:PutRecords", STREAM) is PolicyDecision.IMPLICIT_DENY
    assert evaluate(policy, "kinesis:PutRecord", STREAM + "2") is PolicyDecision.IMPLICIT_DENY
    assert evaluate((), "kinesis:PutRecord", STREAM) is PolicyDecision.IMPLICIT_DENY


def test_explicit_deny_wins_over_any_allow() -> None:
    policy = _policy(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:Delete*", "Resource": TABLE},
    )
    assert evaluate(policy, "dynamodb:DeleteItem", TABLE) is PolicyDecision.EXPLICIT_DENY
    assert evaluate(policy, "dynamodb:PutItem", TABLE) is PolicyDecision.ALLOW


def test_action_wildcards_are_case_insensitive_resources_case_sensitive() -> None:
    policy = _policy({"Effect": "Allow", "Action": ["KINESIS:put*", "sqs:?etQueueUrl"],
                      "Resource": ["arn:aws:kinesis:*:123456789012:stream/ev*",
                                   "arn:aws:sqs:us-east-1:123456789012:queue-?"]})
    assert evaluate(policy, "kinesis:PutRecord", STREAM) is PolicyDecision.ALLOW
    assert evaluate(policy, "sqs:GetQueueUrl", "arn:aws:sqs:us-east-1:123456789012:queue-1") \
        is PolicyDecision.ALLOW
    assert evaluate(policy, "sqs:GetQueueUrl", "arn:aws:sqs:us-east-1:123456789012:queue-12") \
        is PolicyDecision.IMPLICIT_DENY
    upper = STREAM.replace("events", "Events")
    assert evaluate(policy, "kinesis:PutRecord", upper) is PolicyDecision.IMPLICIT_DENY
    # a wildcard in the region field never spans into the account field
    other_account = "arn:aws:kinesis:us-east-1:999999999999:stream/events"
    assert evaluate(policy, "kinesis:PutRecord", other_account) is PolicyDecision.IMPLICIT_DENY


def test_not_action_and_not_resource() -> None:
    policy = _policy({"Effect": "Allow", "NotAction": "dynamodb:Delete*", "Resource": TABLE},
                     {"Effect": "Deny", "Action": "kinesis:*", "NotResource": STREAM})
    assert evaluate(policy, "dynamodb:Query", TABLE) is PolicyDecision.ALLOW
    assert evaluate(policy, "dynamodb:DeleteItem", TABLE) is PolicyDecision.IMPLICIT_DENY
    assert evaluate(policy, "kinesis:PutRecord", STREAM + "-other") is PolicyDecision.EXPLICIT_DENY


@pytest.mark.parametrize(("condition", "context", "expected"), [
    ({"StringEquals": {"aws:RequestedRegion": "us-east-1"}},
     {"aws:RequestedRegion": "us-east-1"}, True),
    ({"StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}},
     {"aws:requestedregion": "us-east-1"}, True),  # keys case-insensitive, values OR-ed
    ({"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}},
     {"aws:RequestedRegion": "us-east-1"}, False),
    ({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Consumer*"}},
     {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/ConsumerEcho"}, True),
    ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/*"}},
     {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/bob"}, False),
    ({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/R"}},
     {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/R"}, True),
    ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": True}, False),
    # an unknown key's values never match: positive operators false, negated ones true
    ({"StringEquals": {"aws:SourceVpce": "vpce-1"}}, {}, False),
    ({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, {}, True),
    ({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}, {}, True),
    ({"Null": {"aws:SourceVpce": "true"}}, {}, True),
    ({"NumericLessThan": {"aws:EpochTime": "1"}}, {"aws:EpochTime": "0"}, False),
    # every operator and key must hold (AND)
    ({"StringEquals": {"aws:RequestedRegion": "us-east-1"}, "Bool": {"aws:SecureTransport": "false"}},
     {"aws:RequestedRegion": "us-east-1", "aws:SecureTransport": True}, False),
])
def test_conditions(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    policy = _policy({"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": "*",
                      "Condition": condition})
    decision = evaluate(policy, "kinesis:PutRecord", STREAM, context)
    assert decision is (PolicyDecision.ALLOW if expected else PolicyDecision.IMPLICIT_DENY)


@pytest.mark.parametrize("statement", [
    {"Effect": "Permit", "Action": "*", "Resource": "*"},
    {"Effect": "Allow", "Resource": "*"},
    {"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"},
    {"Effect": "Allow", "Action": "*"},
    "not an object",
])
def test_malformed_statements_are_refused(statement: Any) -> None:
    with pytest.raises(PolicyError):
        _policy(statement)


def test_managed_policies_known_and_unknown() -> None:
    basic = managed_policy("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
    assert basic is not None
    assert evaluate(parse_policy(basic), "logs:PutLogEvents", "arn:aws:logs:x") is PolicyDecision.ALLOW
    assert managed_policy("arn:aws:iam::aws:policy/NoSuchPolicy") is None


def test_unknown_roles_allow_nothing_and_functions_get_their_own_key() -> None:
    role = "arn:aws:iam::123456789012:role/R"
    access = AccessControl({role: _policy({"Effect": "Allow", "Action": "*", "Resource": "*"})},
                           {"fn": role})
    caller = access.caller(function_access_key("fn"))
    assert caller is not None and caller.role_arn == role
    assert caller.principal == "arn:aws:sts::123456789012:assumed-role/R/fn"
    assert function_access_key("fn").startswith("ASIA") and len(function_access_key("fn")) == 20
    assert access.caller("test") is None  # an administrator
    assert access.decide("arn:aws:iam::123456789012:role/Other", "s3:GetObject", "*") \
        is PolicyDecision.IMPLICIT_DENY


def test_denied_message_has_aws_wording() -> None:
    denial = Denial("arn:aws:sts::123456789012:assumed-role/R/S", "kinesis:PutRecord", STREAM,
                    explicit=False)
    assert denied_message(denial) == (
        "User: arn:aws:sts::123456789012:assumed-role/R/S is not authorized to perform: "
        f"kinesis:PutRecord on resource: {STREAM} because no identity-based policy allows the "
        "kinesis:PutRecord action")
    explicit = Denial(denial.principal, denial.action, denial.resource, explicit=True)
    assert denied_message(explicit).endswith("with an explicit deny in an identity-based policy")


def test_json_requests_map_to_actions_and_resources() -> None:
    cred = Credential("ASIAX", "us-east-1", "dynamodb")
    body = orjson.dumps({"TableName": "roster", "IndexName": "byRoom"})
    req = iam_request(cred, {"X-Amz-Target": "DynamoDB_20120810.Query"}, body)
    assert req is not None
    assert req.checks == (("dynamodb:Query", TABLE + "/index/byRoom"),)
    # transactions are authorized per item, with the item's own action
    transact = {"TransactItems": [{"Put": {"TableName": "roster"}},
                                  {"Delete": {"TableName": "other"}}]}
    assert checks_for("dynamodb", "TransactWriteItems", transact, {}) == (
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:DeleteItem", TABLE.replace("roster", "other")))
    sqs = {"QueueUrl": "http://127.0.0.1:4566/123456789012/dlq"}
    assert checks_for("sqs", "SendMessage", sqs, {}) == (
        ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:dlq"),)
    kinesis = Credential("ASIAX", "us-east-1", "kinesis")
    put = iam_request(kinesis, {"X-Amz-Target": "Kinesis_20131202.PutRecord"},
                      b'{"StreamName": "events"}')
    assert put is not None and put.checks == (("kinesis:PutRecord", STREAM),)


def test_query_protocol_and_unmappable_requests() -> None:
    cred = Credential("ASIAX", "us-east-1", "sqs")
    form = b"Action=GetQueueUrl&QueueName=dlq&Version=2012-11-05"
    req = iam_request(cred, {"Content-Type": "application/x-www-form-urlencoded"}, form)
    assert req is not None and req.protocol == "query"
    assert req.checks == (("sqs:GetQueueUrl", "arn:aws:sqs:us-east-1:123456789012:dlq"),)
    assert iam_request(cred, {}, b"") is None  # REST protocols: not checked
    assert iam_request(cred, {"X-Amz-Target": "AmazonSQS.SendMessage"}, b"{not json") is None


@pytest.mark.parametrize(("service", "status", "error_type"), [
    ("kinesis", 400, "AccessDeniedException"),
    ("dynamodb", 400, "com.amazonaws.dynamodb.v20120810#AccessDeniedException"),
    ("sqs", 400, "com.amazon.coral.service#AccessDeniedException"),
])
def test_denied_bodies_per_service(service: str, status: int, error_type: str) -> None:
    got_status, headers, body = denied_body(service, "json", "User: x is not authorized")
    assert got_status == status
    assert orjson.loads(body) == {"__type": error_type, "message": "User: x is not authorized"}
    assert headers["x-amzn-ErrorType"] == "AccessDeniedException"
    xml_status, _, xml = denied_body(service, "query", "a <b>")
    assert xml_status == 403 and b"<Code>AccessDenied</Code>" in xml and b"a &lt;b&gt;" in xml
