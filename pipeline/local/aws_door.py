"""The AWS-call door the gateway's integrations use: one AWS JSON-protocol call, in process.

Kinesis PutRecord/PutRecords go straight to the backend (~0.05 ms); any other action goes
through moto's own request handling in process (~1 ms, no socket). AWS errors come back as
:class:`~pipeline.local.aws.AwsResponse`, never as exceptions.
"""

from __future__ import annotations

from typing import Any

import orjson
from moto.core.exceptions import ServiceException
from moto.core.exceptions import _RESTError as MotoRESTError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from pipeline.local.aws import (
    KINESIS_MAX_RECORD_BYTES,
    REGION,
    SERIALIZATION,
    UNKNOWN_OPERATION,
    VALIDATION,
    AwsResponse,
)
from pipeline.local.aws import aws_error as _error
from pipeline.local.content_types import kinesis_refusal
from pipeline.local.iam.access import AccessControl
from pipeline.local.iam.integration import integration_denied
from pipeline.local.kinesis_store import data_size

# AWS JSON protocol target prefixes for the services the integrations may call.
_TARGETS = {
    "kinesis": ("Kinesis_20131202", "application/x-amz-json-1.1"),
    "dynamodb": ("DynamoDB_20120810", "application/x-amz-json-1.0"),
    "sqs": ("AmazonSQS", "application/x-amz-json-1.0"),
    "secretsmanager": ("secretsmanager", "application/x-amz-json-1.1"),
}


def _from_exception(exc: Exception) -> AwsResponse:
    if isinstance(exc, MotoRESTError):
        return _error(int(exc.code or 400), exc.error_type, exc.message)
    if isinstance(exc, ServiceException):
        return _error(400, str(exc.code), str(exc.message))
    raise exc


class AwsDoor:
    """Calls into the shared moto backends for the gateway (and anything else in process)."""

    def __init__(self, kinesis: Any, access: AccessControl | None) -> None:
        self.kinesis = kinesis
        self.access = access  # IAM checks (None: off, ``--no-iam``)
        self._wsgi = Client(DomainDispatcherApplication(create_backend_app))

    def call_aws(
        self, service: str, action: str, body: bytes, credentials_arn: str | None,
        content_type: str | None = None,
    ) -> AwsResponse:
        """One AWS JSON-protocol call, in process; AWS errors come back as responses.

        ``content_type`` is the request's Content-Type header (None: the one an SDK sends);
        Kinesis refuses any type it does not read, as AWS does (``content_types.py``).

        Kinesis PutRecord/PutRecords go straight to the backend (~0.05 ms); any other action
        goes through moto's own request handling in process (~1 ms, no socket).
        With IAM on, the ``credentials_arn`` role must allow the action (pipeline.local.iam).
        """
        if self.access is not None and credentials_arn:
            denied = integration_denied(self.access, service, action, body, credentials_arn)
            if denied is not None:
                return denied
        if service == "kinesis" and content_type is not None:
            refused = kinesis_refusal(content_type)
            if refused is not None:
                return refused
        try:
            if service == "kinesis" and action in ("PutRecord", "PutRecords"):
                return self._kinesis_put(action, body)
            return self._dispatch(service, action, body)
        except Exception as exc:  # AWS errors only; anything else propagates from _from_exception
            return _from_exception(exc)

    def _kinesis_put(self, action: str, body: bytes) -> AwsResponse:
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, SERIALIZATION, "the request body is not valid JSON")
        if not isinstance(req, dict):
            return _error(400, SERIALIZATION, "the request body is not a JSON object")
        stream_name, stream_arn = req.get("StreamName"), req.get("StreamARN")
        if not stream_name and not stream_arn:
            return _error(400, VALIDATION, "StreamName or StreamARN is required")
        if action == "PutRecords":
            records = req.get("Records")
            if not isinstance(records, list) or not records:
                return _error(400, VALIDATION, "Records must be a non-empty list")
            result = self.kinesis.put_records(stream_arn, stream_name, records)
            return AwsResponse(200, orjson.dumps(result))
        data, key = req.get("Data"), req.get("PartitionKey")
        if not isinstance(data, str) or not isinstance(key, str):
            return _error(400, VALIDATION,
                          "Data (base64 string) and PartitionKey (string) are required")
        size = data_size(data) + len(key.encode())
        if size > KINESIS_MAX_RECORD_BYTES:
            return _error(400, VALIDATION,
                          "1 validation error detected: Value at 'data' failed to satisfy "
                          "constraint: Member must have length less than or equal to 1048576")
        seq, shard_id = self.kinesis.put_record(
            stream_arn, stream_name, key, req.get("ExplicitHashKey"), data
        )
        return AwsResponse(200, orjson.dumps({"SequenceNumber": seq, "ShardId": shard_id}))

    def _dispatch(self, service: str, action: str, body: bytes) -> AwsResponse:
        target = _TARGETS.get(service)
        if target is None:
            return _error(400, UNKNOWN_OPERATION,
                          f"the twin does not serve service {service!r}")
        prefix, content_type = target
        headers = {
            "X-Amz-Target": f"{prefix}.{action}",
            "Content-Type": content_type,
            "Host": f"{service}.{REGION}.amazonaws.com",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=twin/20240101/{REGION}/{service}/"
            "aws4_request, SignedHeaders=host, Signature=0",
        }
        resp = self._wsgi.post("/", data=body, headers=headers)
        error_type = None
        if resp.status_code >= 400:
            error_type = resp.headers.get("X-Amzn-ErrorType")
            if not error_type:
                try:
                    error_type = str(orjson.loads(resp.data).get("__type", "")).split("#")[-1]
                except (orjson.JSONDecodeError, AttributeError):
                    error_type = "InternalFailure"
            error_type = error_type.split(":")[0].split("#")[-1]
        return AwsResponse(resp.status_code, resp.data, error_type)
