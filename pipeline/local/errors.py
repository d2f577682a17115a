"""The twin's exceptions: one root, :class:`TwinError`, so a caller catches one type.

Each part keeps its own base beside its code; every base derives from :class:`TwinError`::

    TwinError
    ├── CfnError                     the template cannot be resolved (pipeline.local.cfn)
    ├── VtlError                     pipeline.local.vtl
    │   ├── VtlSyntaxError           a mapping template does not parse
    │   └── VtlRenderError           rendering it failed
    ├── GatewayError                 pipeline.local.gateway.errors
    │   └── ApiModelError            the stack declares no usable WebSocket API
    ├── IamError                     pipeline.local.iam.errors
    │   └── PolicyError              a policy document cannot be evaluated
    ├── EsmError                     pipeline.local.esm.errors (carries an AWS code and status)
    │   └── InvalidMappingConfigError  InvalidParameterValueException
    ├── ServicesError                the AWS services cannot start or provision the stack
    ├── WorkerError                  a function cannot be started or invoked
    ├── FunctionError                a synchronously invoked function failed (Unhandled)
    ├── ReconfigureError             a re-synthesized template not applied (pipeline.local.reconfigure)
    ├── UnsupportedVersionError      a patched library is not a version the patch was written for
    └── TwinStartError               a twin process exited or was not ready (pipeline.local.harness)
"""

from __future__ import annotations

from typing import Any


class TwinError(Exception):
    """Base of every error the local twin raises on purpose."""


class CfnError(TwinError):
    """The template cannot be resolved (unknown logical id, malformed intrinsic, cycle)."""


class ServicesError(TwinError):
    """The twin's AWS services could not be started or provisioned."""


class WorkerError(TwinError):
    """A function cannot be invoked (unknown function, worker cannot start)."""


class FunctionError(TwinError):
    """A synchronously invoked function failed (Lambda ``FunctionError: Unhandled``)."""

    def __init__(self, function: str, payload: Any) -> None:
        super().__init__(f"{function}: {payload}")
        self.function = function
        self.payload = payload

    @property
    def error_message(self) -> str | None:
        """The ``errorMessage`` of Lambda's error payload (None when the payload has none)."""
        message = self.payload.get("errorMessage") if isinstance(self.payload, dict) else None
        return message if isinstance(message, str) else None


class UnsupportedVersionError(TwinError):
    """An installed library is not the version the twin's use of its internals was written and
    tested for (``pipeline.local.patches``): one line, naming both versions."""

    def __init__(self, package: str, installed: str, supported: str) -> None:
        super().__init__(
            f"{package} {installed} is installed, but the twin relies on the internals of "
            f"{package} {supported} exactly: run `make install` (installs uv.lock)")
        self.package = package
        self.installed = installed
        self.supported = supported


class TwinStartError(TwinError):
    """The twin exited, or was not ready in time; the message ends with its output."""
