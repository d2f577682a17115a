"""One SigV4-signed AWS JSON 1.1 call without boto3 (the runtime's DescribeStreamSummary).

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

Each call opens one connection and closes it (the runtime calls at most once a minute: a kept
connection would outlive the server's keep-alive), with short timeouts, and is not retried: the
caller keeps what it had and asks again later.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .exceptions import AwsCallError, PipelineRuntimeError
from .signed_http import (
    ConnectionPool,
    NoCredentials,
    SigV4Signer,
    error_code,
    host_header,
    request_bytes,
)

JSON_11 = "application/x-amz-json-1.1"
TIMEOUTS_S = (2.0, 2.0)  # connect, read


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
                 clock: Callable[[], float] = time.time) -> None:
        url = urlsplit(endpoint_url)
        if not url.hostname:
            raise PipelineRuntimeError(f"invalid {service} endpoint {endpoint_url!r}")
        self.endpoint_url = endpoint_url
        self.path = url.path or "/"
        self.host = host_header(url.scheme, url.hostname, url.port)
        self.target_prefix = target_prefix
        self.pool = ConnectionPool(url.scheme, url.hostname, url.port, 0, timeouts)
        self.signer = SigV4Signer(credentials, region, service=service, clock=clock)

    def headers(self, operation: str) -> dict[str, str]:
        """The protocol's headers of ``operation`` (signed with the others)."""
        return {"Content-Type": JSON_11, "X-Amz-Target": f"{self.target_prefix}.{operation}"}

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The output of ``operation`` for ``params``; raises :class:`AwsCallError` for an error
        answer (AWS's code and status) or no answer (status 0, the exception's name)."""
        body = json.dumps(params, separators=(",", ":")).encode()
        try:
            headers = self.signer.sign(self.host, self.path, body, self.headers(operation))
        except NoCredentials as exc:
            raise AwsCallError(operation, "NoCredentialsError", 0, str(exc)) from exc
        request = request_bytes(self.path, headers, body)
        try:
            conn = self.pool.new()
            try:
                status, answer, error_type, _ = conn.exchange(request)
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
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


def _message(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    return str(parsed.get("message") or parsed.get("Message") or "")
