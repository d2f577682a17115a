"""What a verify run talks to: the WebSocket URL, and (when it can) the stream and roster table.

With ``--stack NAME`` the names come from the stack's CloudFormation outputs (``DescribeStacks``:
``WebSocketUrl``, ``StreamName``, ``RosterTableName``, ``AlarmTopicArn``;
pipeline/infrastructure/stack.py). Without
it, from an AWS endpoint serving exactly one stream and one table: the twin's (``--aws-endpoint``,
``$AWS_ENDPOINT_URL``, or ``http://127.0.0.1:4566`` when the URL is the twin's default
``ws://127.0.0.1:8080/...``). Checks that read the stream or the roster skip, with the reason in
:attr:`Target.no_aws`, when neither is available.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline import DEFAULT_REGION
from pipeline.names import TWIN_AWS_ENDPOINT as TWIN_AWS_ENDPOINT
from pipeline.names import TWIN_PORT

TWIN_WS_PORT = TWIN_PORT
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
# Fail fast on an endpoint that is not there: the whole run has 60 s.
_BOTO_CONFIG = Config(connect_timeout=3, read_timeout=10,
                      retries={"mode": "standard", "total_max_attempts": 2})


class TargetError(Exception):
    """The command line does not name something verify can check (exit status 2)."""


@dataclass(frozen=True)
class AwsAccess:
    """boto3 clients for the stage's account (or the twin's endpoint) and its resource names."""

    region: str
    stream: str
    table: str
    endpoint: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    alarm_topic: str | None = None  # the stack's AlarmTopicArn output (``--stack`` only)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` with short timeouts."""
        return _client(service, self.region, self.endpoint, self.credentials)


@dataclass(frozen=True)
class Target:
    """The stage under test."""

    url: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    aws: AwsAccess | None = None
    no_aws: str = ""  # why ``aws`` is None

    @property
    def connect_url(self) -> str:
        """The URL with the ``--query`` parameters added."""
        return with_query(self.url, self.query)

    @property
    def bare_url(self) -> str:
        """The URL without any query string (what an unauthenticated client would open)."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def with_query(url: str, query: tuple[tuple[str, str], ...]) -> str:
    """``url`` with ``query`` appended to whatever query it already has."""
    if not query:
        return url
    parts = urlsplit(url)
    pairs = [*parse_qsl(parts.query, keep_blank_values=True), *query]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), parts.fragment))


def parse_pairs(values: list[str] | None, sep: str, what: str) -> tuple[tuple[str, str], ...]:
    """``["k=v", ...]`` -> pairs; a value without ``sep`` is a :class:`TargetError`."""
    pairs = []
    for value in values or []:
        key, found, rest = value.partition(sep)
        if not found or not key.strip():
            raise TargetError(f"{what} {value!r}: expected KEY{sep}VALUE")
        pairs.append((key.strip(), rest.strip() if sep == ":" else rest))
    return tuple(pairs)


def resolve(*, url: str | None, stack: str | None, aws_endpoint: str | None, region: str | None,
            query: tuple[tuple[str, str], ...] = (),
            headers: tuple[tuple[str, str], ...] = ()) -> Target:
    """The :class:`Target` for these command-line values (see the module docstring)."""
    if url is None and stack is None:
        raise TargetError("give --url WSS_URL, or --stack NAME to read it from CloudFormation")
    region = (region or _region_of(url) or os.environ.get("AWS_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION)
    endpoint = aws_endpoint or (None if stack else _twin_endpoint(url))
    credentials, missing = _credentials(endpoint, region)
    if stack is not None:
        if missing:
            if url is None:
                raise TargetError(f"cannot read stack {stack}: {missing}")
            return Target(url, query, headers, None, f"{missing}: cannot read stack {stack}")
        try:
            outputs = _stack_outputs(stack, region, endpoint, credentials)
        except (ClientError, BotoCoreError, KeyError) as exc:
            if url is None:
                raise TargetError(f"cannot read stack {stack}: {exc}") from exc
            return Target(url, query, headers, None, f"cannot read stack {stack}: {exc}")
        url = url or outputs.get("WebSocketUrl")
        if not url:
            raise TargetError(f"stack {stack} has no WebSocketUrl output: give --url")
        if not outputs.get("StreamName") or not outputs.get("RosterTableName"):
            return Target(url, query, headers, None,
                          f"stack {stack} has no StreamName/RosterTableName output")
        aws = AwsAccess(region, outputs["StreamName"], outputs["RosterTableName"], endpoint,
                        credentials, outputs.get("AlarmTopicArn"))
        return Target(url, query, headers, aws)
    assert url is not None
    if endpoint is None:
        return Target(url, query, headers, None,
                      "no AWS access: give --stack NAME (with AWS credentials) or "
                      "--aws-endpoint URL (the twin's AWS port)")
    try:
        stream, table = _only_stream_and_table(region, endpoint, credentials)
    except (ClientError, BotoCoreError, TargetError) as exc:
        return Target(url, query, headers, None, f"AWS endpoint {endpoint}: {exc}")
    return Target(url, query, headers, AwsAccess(region, stream, table, endpoint, credentials))


def _region_of(url: str | None) -> str | None:
    match = _EXECUTE_API_HOST.match(urlsplit(url).hostname or "") if url else None
    return match.group(1) if match else None


def _twin_endpoint(url: str | None) -> str | None:
    if os.environ.get("AWS_ENDPOINT_URL"):
        return os.environ["AWS_ENDPOINT_URL"]
    parts = urlsplit(url or "")
    if parts.hostname in LOOPBACK and parts.port == TWIN_WS_PORT:
        return TWIN_AWS_ENDPOINT  # `make local`: the twin's default ports go together
    return None


def _credentials(endpoint: str | None, region: str) -> tuple[dict[str, str], str]:
    """Explicit keys for the twin (it takes any), or ``({}, why)`` when real AWS has none."""
    if endpoint is not None:
        if _has_configured_credentials():
            return {}, ""
        return {"aws_access_key_id": "test", "aws_secret_access_key": "test"}, ""
    try:
        found = boto3.Session(region_name=region).get_credentials()
    except BotoCoreError as exc:
        return {}, f"no AWS credentials ({exc})"
    return ({}, "") if found is not None else ({}, "no AWS credentials")


def _has_configured_credentials() -> bool:
    # Looked up without boto3's full chain, which would probe the instance metadata service.
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
                or Path("~/.aws/credentials").expanduser().exists())


def _client(service: str, region: str, endpoint: str | None, credentials: dict[str, str]) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=endpoint, config=_BOTO_CONFIG,
                        **credentials)


def _stack_outputs(stack: str, region: str, endpoint: str | None,
                   credentials: dict[str, str]) -> dict[str, str]:
    cfn = _client("cloudformation", region, endpoint, credentials)
    (described,) = cfn.describe_stacks(StackName=stack)["Stacks"]
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in described.get("Outputs", [])}


def _only_stream_and_table(region: str, endpoint: str,
                           credentials: dict[str, str]) -> tuple[str, str]:
    streams = _client("kinesis", region, endpoint, credentials).list_streams()["StreamNames"]
    tables = _client("dynamodb", region, endpoint, credentials).list_tables()["TableNames"]
    if len(streams) != 1 or len(tables) != 1:
        raise TargetError(f"expected one stream and one table, found streams {streams} and "
                          f"tables {tables}: give --stack NAME")
    return str(streams[0]), str(tables[0])
