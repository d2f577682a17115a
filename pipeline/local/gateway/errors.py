"""The gateway's exceptions.

GatewayError
+-- ApiModelError        the resolved template does not describe a usable WebSocket API
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every gateway error."""


class ApiModelError(GatewayError):
    """The resolved resources do not describe a usable WebSocket API (no API, bad target...)."""

    def __init__(self, message: str, *, logical_id: str | None = None) -> None:
        super().__init__(f"{logical_id}: {message}" if logical_id else message)
        self.logical_id = logical_id
