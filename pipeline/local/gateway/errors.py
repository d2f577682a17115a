"""The gateway's exceptions (under :class:`~pipeline.local.errors.TwinError`).

GatewayError
+-- ApiModelError        the resolved template does not describe a usable WebSocket API
"""

from __future__ import annotations

from pipeline.local.errors import TwinError


class GatewayError(TwinError):
    """Base of every gateway error."""


class ApiModelError(GatewayError):
    """The resolved resources do not describe a usable WebSocket API (no API, bad target...)."""

    def __init__(self, message: str, *, logical_id: str | None = None) -> None:
        super().__init__(f"{logical_id}: {message}" if logical_id else message)
        self.logical_id = logical_id
