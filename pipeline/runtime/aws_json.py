"""SigV4-signed AWS JSON calls without boto3: the runtime's Kinesis and DynamoDB calls.

The JSON 1.1 protocol (Kinesis, DynamoDB, ...) is a ``POST /`` with ``X-Amz-Target:
<prefix>.<Operation>``, ``Content-Type: application/x-amz-json-1.1`` and the input as a JSON
object; the answer is the output as JSON, or a 4xx/5xx whose AWS code is in ``x-amzn-ErrorType``
or the body's ``__type`` (read by :func:`.signed_http.error_code`), raised as
:class:`~.exceptions.AwsCallError`. Requests are signed by the runtime's own
:class:`~.signed_http.SigV4Signer` with the headers botocore signs for the same call (Host,
X-Amz-Date, [X-Amz-Security-Token], Content-Type, X-Amz-Target): the tests check the signature
is the one botocore's ``SigV4Auth`` computes.

Why not a boto3 client: building one imports boto3 and loads botocore's endpoint and service
JSON, ~0.55 s of CPU in a container's first batch here, for one call a minute
(:mod:`.shardcount`).

The endpoint is the one boto3 resolves from the environment: ``AWS_ENDPOINT_URL_<SERVICE>``, else
``AWS_ENDPOINT_URL`` (both ignored when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true), else
``https://<service>.<region>.amazonaws.com`` (``.amazonaws.com.cn`` in the China Regions).
https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
Not followed, as a Lambda function sets none of them: endpoints from the shared config file, FIPS
and dual-stack endpoints.

By default a call opens one connection and closes it, with short timeouts, and is not retried
(DescribeStreamSummary, at most once a minute: a kept connection would outlive the server's
keep-alive; the caller keeps what it had and asks again later). The clients of the roster and the
stream writes (:func:`dynamodb_client`, :func:`kinesis_client`) keep connections alive (``pooled``) and
retry as boto3's ``standard`` retry mode does: at most 3 attempts in all, for an answer-less call,
a 500/502/503/504 or a throttling code, after ``random() * 2**(attempt - 1)`` seconds (capped
at 20 s). https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html

Why: boto3's request pipeline costs ~1-1.5 ms of CPU a call. A chat join batch makes two (a
BatchWriteItem, a PutRecords of presence deltas), and a container's first roster call imported
boto3 (~0.4 s of CPU). :class:`DynamoDbApi` and :class:`KinesisApi` answer as a boto3 client's
methods of the same names do, for the calls the runtime makes (low-level AttributeValue shapes;
PutRecords' ``Data`` as bytes), and raise :class:`~.exceptions.AwsCallError` where boto3 raises
``ClientError``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from .exceptions import AwsCallError, PipelineRuntimeError
from .http_response import HTTPException
from .signed_http import (
    ConnectionPool,
    NoCredentials,
    SigV4Signer,
    environment_region,
    error_code,
    host_header,
    request_bytes,
)

JSON_10 = "application/x-amz-json-1.0"  # DynamoDB's
JSON_11 = "application/x-amz-json-1.1"  # Kinesis's
DYNAMODB_TARGET = "DynamoDB_20120810"  # the X-Amz-Target prefixes
KINESIS_TARGET = "Kinesis_20131202"
TIMEOUTS_S = (2.0, 2.0)  # connect, read
CLIENT_TIMEOUTS_S = (3.0, 20.0)  # the roster's and the stream writes' (a Lambda runs <= 15 min)
POOL_SIZE = 16  # idle keep-alive connections a pooled client keeps (boto3's: 10, ours: 16)
STANDARD_ATTEMPTS = 3  # boto3's standard retry mode: attempts in all
MAX_BACKOFF_S = 20.0
# boto3's standard mode retries these codes (botocore.retries.standard), and 500/502/503/504
# and calls without an answer (status 0).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", "RequestTimeout", "RequestTimeoutException"})
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


def endpoint_url(service_id: str, endpoint_prefix: str, region: str,
                 environ: Mapping[str, str] | None = None) -> str:
    """The endpoint boto3 would use for a service (``service_id`` as in
    ``AWS_ENDPOINT_URL_<SERVICE_ID>``, e.g. ``Kinesis``; ``endpoint_prefix`` the host's first
    label, e.g. ``kinesis``) in ``region``, configured by the environment or AWS's own."""
    env = os.environ if environ is None else environ
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() != "true":
        specific = "AWS_ENDPOINT_URL_" + service_id.upper().replace(" ", "_").replace("-", "_")
        configured = env.get(specific) or env.get("AWS_ENDPOINT_URL")
        if configured:
            return configured
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{endpoint_prefix}.{region}.{suffix}"


class JsonApi:
    """Calls one AWS JSON 1.1 API at ``endpoint_url``, signed for ``service`` in ``region``.

    ``credentials`` is a source as :class:`~.signed_http.SigV4Signer` takes it
    (:func:`.credentials.credential_source`). Thread-safe.
    """

    def __init__(self, endpoint_url: str, *, service: str, target_prefix: str, region: str,
                 credentials: Callable[[], Any],
                 timeouts: tuple[float, float] = TIMEOUTS_S,
                 clock: Callable[[], float] = time.time, content_type: str = JSON_11,
                 pooled: int = 0, attempts: int = 1,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        url = urlsplit(endpoint_url)
        if not url.hostname:
            raise PipelineRuntimeError(f"invalid {service} endpoint {endpoint_url!r}")
        self.endpoint_url = endpoint_url
        self.path = url.path or "/"
        self.host = host_header(url.scheme, url.hostname, url.port)
        self.target_prefix = target_prefix
        self.content_type = content_type
        self.pool = ConnectionPool(url.scheme, url.hostname, url.port, pooled, timeouts)
        self.signer = SigV4Signer(credentials, region, service=service, clock=clock)
        self.attempts = max(1, attempts)
        self._sleep = sleep

    def headers(self, operation: str) -> dict[str, str]:
        """The protocol's headers of ``operation`` (signed with the others)."""
        return {"Content-Type": self.content_type,
                "X-Amz-Target": f"{self.target_prefix}.{operation}"}

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The output of ``operation`` for ``params``; raises :class:`AwsCallError` for an error
        answer (AWS's code and status) or no answer (status 0, the exception's name), once the
        client's attempts are spent on retryable ones (module docstring)."""
        body = json.dumps(params, separators=(",", ":")).encode()
        for attempt in range(1, self.attempts + 1):
            try:
                return self._once(operation, body)
            except AwsCallError as exc:
                if attempt == self.attempts or not retryable(exc):
                    raise
            self._sleep(min(MAX_BACKOFF_S, random.random() * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # the last attempt returned or raised

    def _once(self, operation: str, body: bytes) -> dict[str, Any]:
        try:
            headers = self.signer.sign(self.host, self.path, body, self.headers(operation))
        except NoCredentials as exc:
            raise AwsCallError(operation, "NoCredentialsError", 0, str(exc)) from exc
        request = request_bytes(self.path, headers, body)
        try:
            status, answer, error_type, _ = self.pool.exchange(request)
        except (OSError, HTTPException) as exc:
            raise AwsCallError(operation, type(exc).__name__, 0, str(exc)) from exc
        if not 200 <= status < 300:
            raise AwsCallError(operation, error_code(status, error_type, answer), status,
                               _message(answer))
        try:
            output = json.loads(answer) if answer else {}
        except ValueError:
            output = None
        if not isinstance(output, dict):
            raise AwsCallError(operation, "InvalidResponse", status, repr(answer[:80]))
        return output


    def close(self) -> None:
        """Close the idle connections (tests; a container keeps them)."""
        self.pool.close()


def retryable(exc: AwsCallError) -> bool:
    """Whether boto3's standard retry mode retries this failure (module docstring)."""
    return (exc.status == 0 and exc.code != "NoCredentialsError") \
        or exc.status in TRANSIENT_STATUS or exc.code in THROTTLING_CODES


class DynamoDbApi:
    """The DynamoDB calls the roster makes, as a low-level boto3 client's methods answer them
    (AttributeValue shapes in and out); errors raise :class:`AwsCallError`."""

    def __init__(self, api: JsonApi) -> None:
        self.api = api

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self.api.call("GetItem", params)

    def query(self, **params: Any) -> dict[str, Any]:
        return self.api.call("Query", params)

    def scan(self, **params: Any) -> dict[str, Any]:
        return self.api.call("Scan", params)

    def batch_write_item(self, **params: Any) -> dict[str, Any]:
        return self.api.call("BatchWriteItem", params)

    def get_paginator(self, operation: str) -> _Pages:
        """``query`` or ``scan`` page by page (``LastEvaluatedKey`` -> ``ExclusiveStartKey``)."""
        if operation not in ("query", "scan"):
            raise ValueError(f"no paginator for {operation!r}")
        return _Pages(self.api, "Query" if operation == "query" else "Scan")

    def close(self) -> None:
        self.api.close()


class _Pages:
    def __init__(self, api: JsonApi, operation: str) -> None:
        self.api, self.operation = api, operation

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = self.api.call(self.operation, params)
            yield page
            start = page.get("LastEvaluatedKey")
            if not start:
                return
            params = {**params, "ExclusiveStartKey": start}


class KinesisApi:
    """Kinesis PutRecords as a boto3 client's ``put_records`` answers it (``Data`` as bytes);
    errors raise :class:`AwsCallError`."""

    def __init__(self, api: JsonApi) -> None:
        self.api = api

    def put_records(self, *, Records: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        entries = [{**entry, "Data": base64.b64encode(entry["Data"]).decode("ascii")}
                   for entry in Records]
        return self.api.call("PutRecords", {**params, "Records": entries})

    def close(self) -> None:
        self.api.close()


def dynamodb_client(environ: Mapping[str, str] | None = None) -> DynamoDbApi:
    """The roster's client: the endpoint and credentials boto3 would use, kept connections,
    standard-mode retries."""
    return DynamoDbApi(_pooled_api("DynamoDB", "dynamodb", DYNAMODB_TARGET, JSON_10, environ))


def kinesis_client(environ: Mapping[str, str] | None = None) -> KinesisApi:
    """The stream writes' client (fan-out pages, presence deltas), as :func:`dynamodb_client`."""
    return KinesisApi(_pooled_api("Kinesis", "kinesis", KINESIS_TARGET, JSON_11, environ))


def _pooled_api(service_id: str, service: str, target_prefix: str, content_type: str,
                environ: Mapping[str, str] | None) -> JsonApi:
    from .credentials import credential_source

    region = environment_region(environ)
    return JsonApi(endpoint_url(service_id, service, region, environ), service=service,
                   target_prefix=target_prefix, region=region,
                   credentials=credential_source(environ), timeouts=CLIENT_TIMEOUTS_S,
                   content_type=content_type, pooled=POOL_SIZE, attempts=STANDARD_ATTEMPTS)


def _message(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    return str(parsed.get("message") or parsed.get("Message") or "")
