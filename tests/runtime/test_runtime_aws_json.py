"""The runtime's AWS JSON 1.1 call: botocore's signature, boto3's endpoint, the twin's answers."""

from __future__ import annotations

import datetime
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.credentials import Credentials
from stacks import aws_services

from pipeline.local.services import AwsServices
from pipeline.runtime.aws_json import JsonApi, endpoint_url
from pipeline.runtime.credentials import FrozenCredentials
from pipeline.runtime.exceptions import AwsCallError
from pipeline.runtime.shardcount import KINESIS_TARGET
from pipeline.runtime.signed_http import environment_region

FROZEN = datetime.datetime(2024, 5, 17, 13, 45, 30, tzinfo=datetime.UTC)


class Captured(Exception):
    """Raised by the hook below to stop boto3 before it sends."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _boto3_request(monkeypatch: pytest.MonkeyPatch, endpoint: str | None, region: str,
                   token: str | None) -> Any:
    """The DescribeStreamSummary request a real boto3 client signs (sent nowhere)."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("kinesis", region_name=region, endpoint_url=endpoint,
                          aws_access_key_id="AKIDEXAMPLE",
                          aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                          aws_session_token=token)

    def capture(request: Any, **_: Any) -> None:
        raise Captured(request)

    client.meta.events.register("before-send.kinesis.DescribeStreamSummary", capture)
    with pytest.raises(Captured) as sent:
        client.describe_stream_summary(StreamName="events-prod")
    return sent.value.request


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//session+token=="])
@pytest.mark.parametrize(("endpoint", "region"), [(None, "eu-west-3"),
                                                  ("http://127.0.0.1:4566", "us-east-1")])
def test_the_signature_is_the_one_boto3_sends(
    monkeypatch: pytest.MonkeyPatch, token: str | None, endpoint: str | None, region: str
) -> None:
    theirs = _boto3_request(monkeypatch, endpoint, region, token)
    url = endpoint or endpoint_url("Kinesis", "kinesis", region, {})
    assert theirs.url.rstrip("/") == url  # and boto3 resolves the same endpoint
    api = JsonApi(url, service="kinesis", target_prefix=KINESIS_TARGET, region=region,
                  credentials=lambda: FrozenCredentials(
                      "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token),
                  clock=FROZEN.timestamp)
    ours = api.signer.sign(api.host, api.path, theirs.body,
                           api.headers("DescribeStreamSummary"))
    assert "SignedHeaders=content-type;host;x-amz-date;" in ours["Authorization"]
    assert ours["Authorization"] == theirs.headers["Authorization"].decode()
    assert ours["X-Amz-Date"] == theirs.headers["X-Amz-Date"].decode() == "20240517T134530Z"
    for name in ("Content-Type", "X-Amz-Target"):
        assert ours[name] == theirs.headers[name].decode()


def test_the_signature_of_other_headers_is_botocore_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Header values are signed as botocore canonicalises them (whitespace runs collapsed)."""
    from botocore.awsrequest import AWSRequest

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    extra = {"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": " a  b ",
             "X-Custom": "1"}
    creds = Credentials("AKID", "secret", "tok")
    request = AWSRequest("POST", "https://dynamodb.us-east-1.amazonaws.com/", data=b"{}",
                         headers=extra)
    botocore.auth.SigV4Auth(creds, "dynamodb", "us-east-1").add_auth(request)
    api = JsonApi("https://dynamodb.us-east-1.amazonaws.com", service="dynamodb",
                  target_prefix="DynamoDB_20120810", region="us-east-1",
                  credentials=lambda: creds, clock=FROZEN.timestamp)
    ours = api.signer.sign(api.host, api.path, b"{}", extra)
    assert ours["Authorization"] == request.headers["Authorization"]


def test_the_endpoint_is_the_one_boto3_resolves_from_the_environment() -> None:
    assert endpoint_url("Kinesis", "kinesis", "eu-west-3", {}) == \
        "https://kinesis.eu-west-3.amazonaws.com"
    assert endpoint_url("Kinesis", "kinesis", "cn-north-1", {}) == \
        "https://kinesis.cn-north-1.amazonaws.com.cn"
    both = {"AWS_ENDPOINT_URL": "http://all:1", "AWS_ENDPOINT_URL_KINESIS": "http://kin:2"}
    assert endpoint_url("Kinesis", "kinesis", "us-east-1", both) == "http://kin:2"
    assert endpoint_url("Kinesis", "kinesis", "us-east-1",
                        {"AWS_ENDPOINT_URL": "http://all:1"}) == "http://all:1"
    assert endpoint_url("Kinesis", "kinesis", "us-east-1",
                        {**both, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}) == \
        "https://kinesis.us-east-1.amazonaws.com"
    assert endpoint_url("API Gateway", "apigateway", "us-east-1",
                        {"AWS_ENDPOINT_URL_API_GATEWAY": "http://gw:3"}) == "http://gw:3"
    assert environment_region({"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "x"}) == \
        "eu-north-1"
    assert environment_region({"AWS_DEFAULT_REGION": "sa-east-1"}) == "sa-east-1"
    assert environment_region({}) == "us-east-1"


@pytest.mark.parametrize("service_id", ["Kinesis", "DynamoDB"])
def test_boto3_reads_the_same_service_specific_variable(
    monkeypatch: pytest.MonkeyPatch, service_id: str
) -> None:
    """The ``AWS_ENDPOINT_URL_<SERVICE>`` name above is boto3's (its service id, upper-cased)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service_id.upper()}", "http://127.0.0.1:9")
    client = boto3.client(service_id.lower(), region_name="us-east-1",
                          aws_access_key_id="a", aws_secret_access_key="b")
    assert client.meta.endpoint_url == "http://127.0.0.1:9"


# --- against the twin's Kinesis over HTTP -------------------------------------------------------

@pytest.fixture(scope="module")
def twin_aws() -> Iterator[AwsServices]:
    with aws_services() as services:
        services.kinesis.create_stream("json-api", 2)
        yield services


def _api(url: str) -> JsonApi:
    return JsonApi(url, service="kinesis", target_prefix=KINESIS_TARGET, region="us-east-1",
                   credentials=lambda: FrozenCredentials("twin", "twin", "twin"))


def test_a_call_returns_the_output(twin_aws: AwsServices) -> None:
    out = _api(twin_aws.url).call("DescribeStreamSummary", {"StreamName": "json-api"})
    summary = out["StreamDescriptionSummary"]
    assert (summary["StreamName"], summary["OpenShardCount"]) == ("json-api", 2)


@pytest.mark.parametrize(("operation", "params", "code"), [
    ("DescribeStreamSummary", {"StreamName": "no-such-stream"}, "ResourceNotFoundException"),
    ("DescribeStreamSummary", {}, "ValidationException"),
    ("NoSuchOperation", {}, "UnknownOperationException"),
])
def test_an_error_answer_raises_with_its_code_and_status(
    twin_aws: AwsServices, operation: str, params: dict[str, Any], code: str
) -> None:
    with pytest.raises(AwsCallError) as raised:
        _api(twin_aws.url).call(operation, params)
    assert (raised.value.operation, raised.value.code, raised.value.status) == (
        operation, code, 400)


def test_no_answer_raises_with_status_0() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(AwsCallError) as raised:
            _api(f"http://127.0.0.1:{port}").call("DescribeStreamSummary",
                                                 {"StreamName": "x"})
    assert (raised.value.status, raised.value.code) == (0, "ConnectionRefusedError")


def test_without_credentials_nothing_is_sent() -> None:
    api = JsonApi("http://127.0.0.1:9", service="kinesis", target_prefix=KINESIS_TARGET,
                  region="us-east-1", credentials=lambda: None)
    with pytest.raises(AwsCallError) as raised:
        api.call("DescribeStreamSummary", {"StreamName": "x"})
    assert (raised.value.status, raised.value.code) == (0, "NoCredentialsError")
    assert api.pool.opened == 0
