"""The broadcast scenario's server side: ``pipeline.publish.publish`` (another part), lazily."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
from typing import Any

from loadtest.errors import TargetError
from loadtest.runner import Publish


def make_publisher(aws_endpoint: str | None, stage: str) -> Publish:
    """An async ``publish(body)`` that sends ``body`` to every connection (room ``None``)."""
    try:
        publish_module = importlib.import_module("pipeline.publish")
    except ImportError as exc:
        raise TargetError(f"broadcast needs pipeline.publish, which is missing ({exc})") from exc
    func: Any = publish_module.publish
    params = inspect.signature(func).parameters
    kwargs: dict[str, Any] = {}
    if "room" in params:
        kwargs["room"] = None
    if aws_endpoint is not None:
        if "endpoint_url" in params:
            kwargs["endpoint_url"] = aws_endpoint
        else:
            os.environ.setdefault("AWS_ENDPOINT_URL", aws_endpoint)
    if "stage" in params:
        kwargs["stage"] = stage

    async def publish(body: dict[str, Any]) -> None:
        await asyncio.to_thread(func, body, **kwargs)

    return publish
