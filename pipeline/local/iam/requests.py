"""What an AWS API request asks for, in IAM terms: the caller's key, the action, the resources.

Sans-I/O: headers, query and body in; an :class:`IamRequest` out. JSON protocols name the
operation in ``X-Amz-Target`` (``Kinesis_20131202.PutRecord``), query protocols in the
``Action`` form field. The IAM service prefix is the signing name of the SigV4 credential scope.
Operations the twin cannot map (REST protocols such as Lambda's or S3's) are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.kinesis import KinesisError, wire

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
# signing name -> IAM service prefix, where they differ
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}


@dataclass(frozen=True)
class Credential:
    """The SigV4 credential scope of a request."""

    access_key: str
    region: str
    service: str


Check = tuple[str, str]  # (IAM action, resource ARN)
# TransactWriteItems/TransactGetItems are authorized per item with the item's own action
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


@dataclass(frozen=True)
class IamRequest:
    """One API call as IAM sees it: every (action, resource) pair must be allowed."""

    checks: tuple[Check, ...]
    protocol: str  # "json", "cbor" (Kinesis) or "query"


def credential_of(headers: Mapping[str, str], query: str = "") -> Credential | None:
    """The credential of a SigV4 ``Authorization`` header or of a presigned query string."""
    auth = headers.get("Authorization") or headers.get("authorization") or ""
    match = _CREDENTIAL.search(auth)
    if match is None and query:
        values = parse_qs(query).get("X-Amz-Credential")
        if values:
            match = _CREDENTIAL.search("Credential=" + values[0])
    if match is None:
        return None
    return Credential(match.group(1), match.group(2), match.group(3))


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def _kinesis(op: str, req: Mapping[str, Any]) -> tuple[str, ...]:
    consumer = req.get("ConsumerARN")
    if isinstance(consumer, str) and consumer:
        return (consumer,)
    arn = req.get("StreamARN")
    if isinstance(arn, str) and arn:
        return (arn,)
    name = req.get("StreamName")
    if isinstance(name, str) and name:
        return (_arn("kinesis", f"stream/{name}"),)
    return ("*",)


def _table_arn(name: str, index: Any = None) -> str:
    arn = name if name.startswith("arn:") else _arn("dynamodb", f"table/{name}")
    return f"{arn}/index/{index}" if isinstance(index, str) and index else arn


def _dynamodb(op: str, req: Mapping[str, Any]) -> tuple[str, ...]:
    items = req.get("RequestItems")
    if isinstance(items, Mapping) and items:  # BatchGetItem / BatchWriteItem: every table
        return tuple(_table_arn(str(t)) for t in items)
    name = req.get("TableName") or req.get("TableArn") or req.get("ResourceArn")
    if isinstance(name, str) and name:
        return (_table_arn(name, req.get("IndexName")),)
    return ("*",)


def _sqs(op: str, req: Mapping[str, Any]) -> tuple[str, ...]:
    url = req.get("QueueUrl")
    if isinstance(url, str) and url:
        parts = [p for p in urlsplit(url).path.split("/") if p]
        if len(parts) >= 2:
            return (f"arn:aws:sqs:{REGION}:{parts[-2]}:{parts[-1]}",)
    name = req.get("QueueName")
    if isinstance(name, str) and name:
        return (_arn("sqs", name),)
    return ("*",)


def _secretsmanager(op: str, req: Mapping[str, Any],
                    secrets: Mapping[str, str]) -> tuple[str, ...]:
    secret = req.get("SecretId")
    if isinstance(secret, str) and secret:
        if secret.startswith("arn:"):
            return (secret,)
        return (secrets.get(secret, _arn("secretsmanager", f"secret:{secret}")),)
    return ("*",)


def iam_request(credential: Credential, headers: Mapping[str, str], body: bytes,
                query: str = "", *, secrets: Mapping[str, str] | None = None) -> IamRequest | None:
    """The action and resources of one request; None when the twin cannot tell (unchecked).

    ``secrets`` maps Secrets Manager names to the ARNs the stack gave them.
    """
    prefix = _IAM_PREFIX.get(credential.service, credential.service)
    target = headers.get("X-Amz-Target") or headers.get("x-amz-target")
    if target:
        operation = target.rsplit(".", 1)[-1]
        content_type = headers.get("Content-Type") or headers.get("content-type") or ""
        protocol = "cbor" if content_type.split(";", 1)[0].strip().lower() == wire.CBOR \
            else "json"
        try:
            req = wire.decode(body, protocol if protocol == "json" else wire.CBOR)
        except KinesisError:
            return None  # the service answers SerializationException itself
        return IamRequest(checks_for(prefix, operation, req, secrets or {}), protocol)
    form = {k: v[0] for k, v in parse_qs(query).items()}
    content_type = headers.get("Content-Type") or headers.get("content-type") or ""
    if body and "x-www-form-urlencoded" in content_type:
        form.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
    action = form.get("Action")
    if not action:
        return None
    return IamRequest(checks_for(prefix, action, form, secrets or {}), "query")


def checks_for(prefix: str, operation: str, req: Mapping[str, Any],
               secrets: Mapping[str, str]) -> tuple[Check, ...]:
    """The (action, resource) pairs IAM authorizes for one operation."""
    transact = req.get("TransactItems") if prefix == "dynamodb" else None
    if isinstance(transact, list) and transact:
        checks: list[Check] = []
        for item in transact:
            for kind, body in (item.items() if isinstance(item, Mapping) else ()):
                action = _TRANSACT_ACTIONS.get(str(kind))
                if action and isinstance(body, Mapping) and isinstance(body.get("TableName"), str):
                    checks.append((f"dynamodb:{action}", _table_arn(body["TableName"])))
        if checks:
            return tuple(dict.fromkeys(checks))
    action = f"{prefix}:{operation}"
    return tuple((action, r) for r in resources_for(prefix, operation, req, secrets))


def resources_for(prefix: str, operation: str, req: Mapping[str, Any],
                  secrets: Mapping[str, str]) -> tuple[str, ...]:
    """The resource ARNs an operation acts on ("*" when the twin cannot name one)."""
    if prefix == "kinesis":
        return _kinesis(operation, req)
    if prefix == "dynamodb":
        return _dynamodb(operation, req)
    if prefix == "sqs":
        return _sqs(operation, req)
    if prefix == "secretsmanager":
        return _secretsmanager(operation, req, secrets)
    return ("*",)


def denied_body(service: str, protocol: str, message: str) -> tuple[int, dict[str, str], bytes]:
    """AWS's AccessDenied answer for a service: (status, headers, body).

    JSON protocols answer HTTP 400 with ``__type``; query protocols 403 with an XML ErrorResponse
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-responses.html).
    """
    if protocol == "cbor":  # Kinesis's CBOR protocol: the same map, in CBOR
        return 400, {"Content-Type": wire.CBOR, "x-amzn-ErrorType": "AccessDeniedException"}, \
            wire.encode({"__type": "AccessDeniedException", "message": message}, wire.CBOR)
    if protocol == "query":
        xml = ("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
               f"<Message>{_xml_escape(message)}</Message></Error>"
               "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
        return 403, {"Content-Type": "text/xml"}, xml.encode()
    headers = {"Content-Type": "application/x-amz-json-1.0",
               "x-amzn-ErrorType": "AccessDeniedException"}
    error_type = "AccessDeniedException"
    if service == "kinesis":
        headers["Content-Type"] = "application/x-amz-json-1.1"
    elif service == "dynamodb":
        error_type = "com.amazonaws.dynamodb.v20120810#AccessDeniedException"
    elif service == "sqs":  # JSON protocol with query-compatible error codes
        error_type = "com.amazon.coral.service#AccessDeniedException"
        headers["x-amzn-query-error"] = "AccessDenied;Sender"
    elif service == "secretsmanager":
        headers["Content-Type"] = "application/x-amz-json-1.1"
    return 400, headers, orjson.dumps({"__type": error_type, "message": message})


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
