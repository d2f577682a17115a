"""The AWS-call door the gateway's integrations use: one AWS JSON-protocol call, in process.

Kinesis is the twin's own (:mod:`pipeline.local.kinesis`): a JSON PutRecord (the frame path)
goes straight to the model (~0.01 ms), any other Kinesis request (or a CBOR one) through its
wire layer, in process; other services through moto's own in-process request path (the one
``moto.mock_aws`` serves boto3 with: ``normalize_request`` and the service's URL handler, found in
its backend's ``urls``), ~0.4 ms a DynamoDB PutItem against ~0.7 ms through a WSGI test client
and Flask. A plain PutItem (what each ``$connect`` writes to the roster: only ``TableName`` and an
``Item`` of string, integer, boolean and null attributes) goes to moto's DynamoDB backend
directly, after the same item checks moto's request handler makes (~0.1 ms); any other request,
and any plain one the backend refuses, takes the request path, whose answer is moto's own
(:meth:`AwsDoor._plain_put`; tests compare the two). AWS errors come back as
:class:`~pipeline.aws.errors.AwsResponse`, never as exceptions.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson
from botocore.awsrequest import AWSPreparedRequest
from botocore.compat import HTTPHeaders
from moto.backends import get_backend
from moto.core.exceptions import ServiceException
from moto.core.exceptions import _RESTError as MotoRESTError
from moto.core.request import normalize_request
from moto.dynamodb import responses as dynamodb_responses

from pipeline.aws.errors import SERIALIZATION, UNKNOWN_OPERATION, AwsResponse
from pipeline.aws.errors import aws_error as _error
from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.content_types import KINESIS_JSON, kinesis_refusal, media_type
from pipeline.local.iam.access import AccessControl
from pipeline.local.iam.integration import integration_denied
from pipeline.local.kinesis import KinesisBackend, KinesisError, KinesisResponses
from pipeline.local.moto_dispatch import moto_handler, plain_item, service_endpoint

# AWS JSON protocol target prefixes for the moto services the integrations may call.
_TARGETS = {
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
    """Calls into the twin's services for the gateway (and anything else in process)."""

    def __init__(self, kinesis: KinesisResponses, access: AccessControl | None) -> None:
        self.kinesis: KinesisBackend = kinesis.backend
        self.kinesis_wire = kinesis
        self.access = access  # IAM checks (None: off, ``--no-iam``)

    def call_aws(
        self, service: str, action: str, body: bytes, credentials_arn: str | None,
        content_type: str | None = None,
    ) -> AwsResponse:
        """One AWS JSON-protocol call, in process; AWS errors come back as responses.

        ``content_type`` is the request's Content-Type header (None: the one an SDK sends);
        Kinesis refuses any type it does not read, as AWS does (``content_types.py``).

        A JSON Kinesis PutRecord goes straight to the model; any other action goes
        through Kinesis's wire layer or moto's own request handling, in process (no socket).
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
        if service == "kinesis":
            if action == "PutRecord" and (content_type is None
                                          or media_type(content_type) == KINESIS_JSON):
                return self._kinesis_put(body)
            answer = self.kinesis_wire.handle(action, body, content_type)
            return AwsResponse(answer.status, answer.body, answer.error_type)
        if service == "dynamodb" and action == "PutItem" and self._plain_put(body):
            return _PUT_DONE
        try:
            return self._dispatch(service, action, body)
        except Exception as exc:  # AWS errors only; anything else propagates from _from_exception
            return _from_exception(exc)

    def _plain_put(self, body: bytes) -> bool:
        """Write a plain PutItem straight to moto's backend; False (nothing written): not plain,
        or refused (the request path then gives moto's answer)."""
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(req, dict) or req.keys() != {"TableName", "Item"}:
            return False
        name, item = req["TableName"], req["Item"]
        if not isinstance(name, str) or not plain_item(item):
            return False
        backend: Any = get_backend("dynamodb")[ACCOUNT_ID][REGION]
        try:
            table = backend.get_table(name)
            dynamodb_responses.validate_put_has_empty_keys(item, table)
            dynamodb_responses.validate_put_has_empty_attrs(item, table)
            dynamodb_responses.validate_put_has_gsi_keys_set_to_none(item, table)
            backend.put_item(name, item, None, None, {}, {}, True, None)
        except Exception:  # moto refused it: the request path answers, as moto does
            return False
        return True

    def _kinesis_put(self, body: bytes) -> AwsResponse:
        """The frame path: a JSON PutRecord, straight to the model (one parse, one decode)."""
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            req = None
        if not isinstance(req, dict):
            return _error(400, SERIALIZATION, "Unexpected character found when decoding the "
                          "request: not a JSON object.")
        try:
            data = req.get("Data")
            try:
                raw = binascii.a2b_base64(data if isinstance(data, str) else "!",
                                          strict_mode=True)
            except (binascii.Error, ValueError):
                answer = self.kinesis_wire.handle("PutRecord", body)  # its error, as the wire says
                return AwsResponse(answer.status, answer.body, answer.error_type)
            stream = self.kinesis.stream(req.get("StreamName"), req.get("StreamARN"))
            record, shard = self.kinesis.put_record(stream, req.get("PartitionKey"), raw,
                                                    req.get("ExplicitHashKey"))
        except KinesisError as exc:
            return _error(exc.status, exc.code, exc.message)
        return AwsResponse(200, b'{"SequenceNumber":"%s","ShardId":"%s"}'
                           % (record.sequence_number.encode(), shard.shard_id.encode()))

    def _dispatch(self, service: str, action: str, body: bytes) -> AwsResponse:
        target = _TARGETS.get(service)
        if target is None:
            return _error(400, UNKNOWN_OPERATION,
                          f"the twin does not serve service {service!r}")
        prefix, content_type = target
        headers = HTTPHeaders()
        headers["X-Amz-Target"] = f"{prefix}.{action}"
        headers["Content-Type"] = content_type
        headers["Host"] = f"{service}.{REGION}.amazonaws.com"
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential=twin/20240101/{REGION}/"
                                    f"{service}/aws4_request, SignedHeaders=host, Signature=0")
        request = normalize_request(AWSPreparedRequest("POST", service_endpoint(service), headers,
                                                       body, False))
        status, answer_headers, answer = moto_handler(service)(request, request.raw_url,
                                                               request.headers)
        data = answer.encode() if isinstance(answer, str) else bytes(answer or b"")
        error_type = None
        if status >= 400:
            error_type = answer_headers.get("X-Amzn-ErrorType")
            if not error_type:
                try:
                    error_type = str(orjson.loads(data).get("__type", "")).split("#")[-1]
                except (orjson.JSONDecodeError, AttributeError):
                    error_type = "InternalFailure"
            error_type = error_type.split(":")[0].split("#")[-1]
        return AwsResponse(int(status), data, error_type)


_PUT_DONE = AwsResponse(200, b"{}", None)
