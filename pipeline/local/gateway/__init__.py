"""The twin's API Gateway: WebSocket upgrades at ``/<stage>`` and the @connections API, one port.

The orchestrator (``pipeline/local/twin.py``) builds an :class:`ApiModel` from the resolved stack
resources with :func:`build_api_model`, and runs a :class:`Gateway` against an
:class:`IntegrationBackend` that executes the AWS actions the integrations render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.aws.errors import AwsResponse
from pipeline.aws.limits import (
    WEBSOCKET_CONNECTION_LIFE_S,
    WEBSOCKET_FRAME_BYTES,
    WEBSOCKET_IDLE_TIMEOUT_S,
    WEBSOCKET_MESSAGE_BYTES,
)

__all__ = [
    "ApiModel",
    "ApiModelError",
    "AwsResponse",
    "Gateway",
    "GatewayError",
    "GatewayLimits",
    "GatewayRules",
    "IntegrationBackend",
    "build_api_model",
]


class IntegrationBackend(Protocol):
    """Executes what the integrations ask for, against the twin's services."""

    def call_aws(
        self, service: str, action: str, body: bytes, credentials_arn: str | None,
        content_type: str | None = None,
    ) -> AwsResponse:
        """Run one AWS JSON-protocol action ("kinesis", "PutRecord"); never raises for AWS errors.

        ``content_type``: the Content-Type header the integration sends (None: an SDK's own).
        """
        ...

    async def invoke_function(self, function_arn: str, event: dict[str, Any]) -> Any:
        """Invoke a Lambda function (the $connect token authorizer) and return its result;
        a function error raises :class:`~pipeline.local.errors.FunctionError` with Lambda's
        error payload."""
        ...


@dataclass(frozen=True)
class GatewayLimits:
    """API Gateway WebSocket quotas (:mod:`pipeline.aws.limits`), as the twin enforces them."""

    max_message_bytes: int = WEBSOCKET_MESSAGE_BYTES
    frame_bytes: int = WEBSOCKET_FRAME_BYTES
    idle_timeout_s: float = WEBSOCKET_IDLE_TIMEOUT_S
    max_connection_s: float = WEBSOCKET_CONNECTION_LIFE_S
    # The twin's choice (AWS documents no figure): a client that stops reading is dropped once a
    # send to it has been blocked this long (its $disconnect says 1006); the post answers 410.
    send_timeout_s: float = 10.0


SELECTION_RULES = ("status", "lambda-like")
CONNECT_FAILURE_RULES = ("accept", "refuse")


@dataclass(frozen=True)
class GatewayRules:
    """The twin's answers where AWS documents nothing (docs/fidelity.md "Unverified on AWS").

    ``integration_response_selection``: how an AWS-service integration's response picks its
    integration response. ``status`` (default) matches the ``/regex/`` keys against the HTTP
    status, as AWS documents for HTTP and "all other HTTP and AWS back ends" in REST APIs
    (https://docs.aws.amazon.com/apigateway/latest/api/API_IntegrationResponse.html,
    ``selectionPattern``); ``lambda-like`` matches them against the body's ``errorMessage``, as
    for a Lambda integration, so a Kinesis answer (which has none) always falls to ``$default``.

    ``connect_failure``: what a failed non-proxy ``$connect`` integration (e.g. the roster's
    PutItem) does. ``refuse`` (default): HTTP 500, no connection, as the route-keys page reads
    ("If the $connect request fails (e.g., due to AuthN/AuthZ failure or an integration
    failure), the connection will not be made") and as the stack's ``$connect`` declares it:
    its only integration response is ``/200/``, so a failed PutItem (4xx/5xx) matches none
    (websocket_ingress.py ``CONNECT_RESPONSE_KEYS``, issue 21 finding 5); ``accept``: the
    upgrade completes anyway, as users report for non-proxy (HTTP) ``$connect`` integrations.
    """

    integration_response_selection: str = "status"
    connect_failure: str = "refuse"

    def __post_init__(self) -> None:
        if self.integration_response_selection not in SELECTION_RULES:
            raise ValueError(f"integration_response_selection must be one of {SELECTION_RULES}")
        if self.connect_failure not in CONNECT_FAILURE_RULES:
            raise ValueError(f"connect_failure must be one of {CONNECT_FAILURE_RULES}")


# Imported last: these modules use the types above.
from pipeline.local.gateway.errors import ApiModelError, GatewayError  # noqa: E402
from pipeline.local.gateway.model import ApiModel, build_api_model  # noqa: E402
from pipeline.local.gateway.server import Gateway  # noqa: E402
