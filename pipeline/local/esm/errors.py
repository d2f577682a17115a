"""Errors of the event source mapping engine.

One base, :class:`EsmError`; subclasses carry the AWS error code Lambda would answer with::

    EsmError
    └── InvalidMappingConfigError   (InvalidParameterValueException, HTTP 400)
"""

from __future__ import annotations

from pipeline.local.errors import TwinError


class EsmError(TwinError):
    """Base of every error raised by ``pipeline.local.esm``."""

    code: str = "ServiceException"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidMappingConfigError(EsmError):
    """An ``AWS::Lambda::EventSourceMapping`` property is missing, out of range or malformed."""

    code = "InvalidParameterValueException"
    status = 400

    def __init__(self, message: str, *, logical_id: str = "", prop: str = "") -> None:
        where = f"{logical_id}.{prop}" if logical_id and prop else logical_id or prop
        super().__init__(f"{where}: {message}" if where else message)
        self.logical_id = logical_id
        self.prop = prop
