"""MOCK integrations, with no I/O: the rendered request template chooses the status.

API Gateway runs no backend for a MOCK integration: its request template renders a JSON object
whose ``statusCode`` is the integration's status, and the integration response selected for that
status answers (a two-way route) with an empty ``$input``. A template that renders no usable
``statusCode`` is an integration failure (500).
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-integration-requests.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-mock-integration.html
"""

from __future__ import annotations

import orjson

from pipeline.local.gateway import AwsResponse

MOCK_SERVICE = "mock"  # Integration.service of a MOCK integration (no AWS service)
MOCK_ACTION = "MOCK"


def mock_response(rendered: bytes) -> AwsResponse:
    """The MOCK integration's result for its rendered request template."""
    try:
        document = orjson.loads(rendered) if rendered.strip() else {}
    except orjson.JSONDecodeError:
        return AwsResponse(500, b"", "InternalServerErrorException")
    status = document.get("statusCode") if isinstance(document, dict) else None
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return AwsResponse(500, b"", "InternalServerErrorException")
    return AwsResponse(status, b"")
