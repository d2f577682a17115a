"""The twin's API Gateway: WebSocket upgrades at ``/<stage>`` and the @connections API, one port.

The orchestrator (``pipeline/local/twin.py``) builds an :class:`ApiModel` from the resolved stack
resources with :func:`build_api_model`, and runs a :class:`Gateway` against an
:class:`IntegrationBackend` that executes the AWS actions the integrations render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ApiModel",
    "ApiModelError",
    "AwsResponse",
    "Gateway",
    "GatewayError",
    "GatewayLimits",
    "IntegrationBackend",
    "build_api_model",
]


@dataclass(frozen=True)
class AwsResponse:
    """What an AWS JSON-protocol action answered (error_type e.g. "AccessDeniedException")."""

    status: int
    body: bytes
    error_type: str | None = None


class IntegrationBackend(Protocol):
    """Executes what the integrations ask for, against the twin's services."""

    def call_aws(
        self, service: str, action: str, body: bytes, credentials_arn: str | None
    ) -> AwsResponse:
        """Run one AWS JSON-protocol action ("kinesis", "PutRecord"); never raises for AWS errors."""
        ...

    async def invoke_function(self, function_arn: str, event: dict[str, Any]) -> Any:
        """Invoke a Lambda function (the $connect token authorizer) and return its result."""
        ...


@dataclass(frozen=True)
class GatewayLimits:
    """API Gateway WebSocket quotas
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table).
    """

    max_message_bytes: int = 128 * 1024
    frame_bytes: int = 32 * 1024
    idle_timeout_s: float = 600.0
    max_connection_s: float = 7200.0
    # The twin's choice (AWS documents no figure): a client that stops reading is dropped once a
    # send to it has been blocked this long (its $disconnect says 1006); the post answers 410.
    send_timeout_s: float = 10.0


# Imported last: these modules use the types above.
from pipeline.local.gateway.errors import ApiModelError, GatewayError  # noqa: E402
from pipeline.local.gateway.model import ApiModel, build_api_model  # noqa: E402
from pipeline.local.gateway.server import Gateway  # noqa: E402
