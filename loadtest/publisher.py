"""The broadcast scenario's server side: ``pipeline.publish.publish`` (another part), lazily."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Any

from loadtest.errors import TargetError
from loadtest.runner import Publish


def make_put(aws_endpoint: str | None, room: str | None = None) -> Callable[[dict[str, Any]], None]:
    """A blocking ``put(body)`` that broadcasts ``body`` to ``room`` (``None``: every connection).

    One boto3 client and one stream lookup for the whole run, so the figure is the pipeline's,
    not the cost of creating clients.
    """
    try:
        module: Any = importlib.import_module("pipeline.publish")
    except ImportError as exc:
        raise TargetError(f"broadcast needs pipeline.publish, which is missing ({exc})") from exc
    import boto3

    from pipeline import DEFAULT_REGION

    kwargs: dict[str, Any] = {"region_name": DEFAULT_REGION}
    if aws_endpoint:
        kwargs["endpoint_url"] = aws_endpoint
        if boto3.Session().get_credentials() is None:
            kwargs.update(aws_access_key_id="test", aws_secret_access_key="test")  # the twin
    client = boto3.client("kinesis", **kwargs)
    stream: dict[str, str] = {}

    def put(body: dict[str, Any]) -> None:
        result = module.publish(room, body, client=client, stream_name=stream.get("name"))
        stream.setdefault("name", str(result.stream))

    return put


def make_publisher(aws_endpoint: str | None, room: str | None = None) -> Publish:
    """:func:`make_put` for an asyncio run: the put runs in a thread."""
    put = make_put(aws_endpoint, room)

    async def publish(body: dict[str, Any]) -> None:
        await asyncio.to_thread(put, body)

    return publish
