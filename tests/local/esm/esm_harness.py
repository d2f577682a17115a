"""Test doubles for the engine's tests: a Python-function invoker, a list sink, a probe.

They are fakes of the engine's neighbours (the worker pool and SQS), not of the engine.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from collections.abc import Callable
from typing import Any

from polling import until

from pipeline.local.esm import InvokeResult

STREAM_NAME = "stream"
DLQ = "arn:aws:sqs:us-east-1:123456789012:dlq"


class Probe:
    """Wakes waiters whenever something observable happened; wait on a condition, deadline."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        await until(predicate, timeout, wake=self._changed, poll=timeout)


def decoded(event: dict[str, Any]) -> list[Any]:
    """The JSON payloads of an event's records (None for non-JSON data)."""
    out: list[Any] = []
    for record in event["Records"]:
        raw = base64.b64decode(record["kinesis"]["data"])
        try:
            out.append(json.loads(raw))
        except ValueError:
            out.append(None)
    return out


class FunctionInvoker:
    """Calls a Python function (sync or async) with the event, like a Lambda worker would:
    an exception or exceeding ``timeout_s`` is a function error."""

    def __init__(self, function: Callable[[dict[str, Any]], Any], probe: Probe,
                 *, timeout_s: float = 5.0) -> None:
        self.function = function
        self.probe = probe
        self.timeout_s = timeout_s
        self.events: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def invoke(self, function_name: str, event: dict[str, Any]) -> InvokeResult:
        self.events.append(event)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.probe.notify()
        try:
            value = self.function(event)
            if inspect.isawaitable(value):
                async with asyncio.timeout(self.timeout_s):
                    value = await value
            return InvokeResult(True, value)
        except TimeoutError:
            return InvokeResult(False, None, "Sandbox.Timedout",
                                f"Task timed out after {self.timeout_s:.2f} seconds")
        except Exception as exc:
            return InvokeResult(False, None, type(exc).__name__, str(exc))
        finally:
            self.in_flight -= 1
            self.probe.notify()


class ListSink:
    """The on-failure destination: keeps (destination, message) pairs."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, destination_arn: str, message: dict[str, Any]) -> None:
        self.sent.append((destination_arn, json.loads(json.dumps(message))))  # JSON-serialisable
        self.probe.notify()
