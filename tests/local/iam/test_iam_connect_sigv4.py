"""``auth=iam``: the $connect upgrade must carry a valid SigV4 presigned query (execute-api)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from iam_kit import function_named
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pipeline.local.cfn import Stack, resolve_stack
from pipeline.local.gateway import Gateway, build_api_model
from pipeline.local.iam.access import AccessControl, function_access_key, function_secret_key
from pipeline.local.iam.gateway_access import GatewayAccess
from pipeline.local.services import AwsServices
from pipeline.local.twin import TwinBackend

pytestmark = pytest.mark.synth


@pytest.fixture(scope="module")
def iam_auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """``cdk synth -c auth=iam`` (the one extra synth of this suite), resolved."""
    import json

    from pipeline.infrastructure.synth import synthesize

    outdir = synthesize(tmp_path_factory.mktemp("cdk.out.iam"), {"stage": "dev", "auth": "iam"})
    template = json.loads((outdir / "WebSocketPipeline-dev.template.json").read_text())
    return resolve_stack(template, "IamAuth-dev", Path(outdir))


@pytest.fixture(scope="module")
def auth_services(iam_auth_stack: Stack) -> Iterator[AwsServices]:
    svc = AwsServices(access=AccessControl.from_stack(iam_auth_stack))
    svc.start(0)
    svc.provision(iam_auth_stack)
    yield svc
    svc.stop()


@pytest.fixture
async def gateway(iam_auth_stack: Stack, auth_services: AwsServices) -> AsyncIterator[Gateway]:
    api = build_api_model(iam_auth_stack, "dev")
    assert auth_services.access is not None
    running = Gateway(api, TwinBackend(auth_services), stage="dev", port=0,
                      access=GatewayAccess(auth_services.access, api.api_id, "dev"))
    await running.start()
    yield running
    await running.stop()


def _signed(port: int, key: str = "test", secret: str = "test", expires: int = 60) -> str:
    request = AWSRequest(method="GET", url=f"http://127.0.0.1:{port}/dev")
    SigV4QueryAuth(Credentials(key, secret), "execute-api", "us-east-1",
                   expires=expires).add_auth(request)
    return str(request.url).replace("http://", "ws://", 1)


async def _status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=5):
            pass
    return int(refused.value.response.status_code)


def test_the_iam_variant_declares_aws_iam_on_connect(iam_auth_stack: Stack) -> None:
    api = build_api_model(iam_auth_stack, "dev")
    route = api.route("$connect")
    assert route is not None and route.authorization_type == "AWS_IAM"


async def test_valid_signature_connects(gateway: Gateway) -> None:
    async with connect(_signed(gateway.port), open_timeout=5) as ws:
        await ws.send('{"action": "echo", "data": 1}')
        assert len(gateway.connection_ids) == 1


async def test_missing_or_bad_signature_is_refused(gateway: Gateway) -> None:
    assert await _status(f"ws://127.0.0.1:{gateway.port}/dev") == 403
    good = _signed(gateway.port)
    tampered = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert await _status(tampered) == 403
    assert await _status(_signed(gateway.port, secret="wrong")) == 403
    assert await _status(_signed(gateway.port, key="AKIAUNKNOWN", secret="x")) == 403
    assert gateway.connection_ids == []


async def test_function_role_needs_execute_api_invoke(gateway: Gateway,
                                                      iam_auth_stack: Stack) -> None:
    name = function_named(iam_auth_stack, "ConsumerechoFunction")
    url = _signed(gateway.port, function_access_key(name), function_secret_key(name))
    assert await _status(url) == 403  # signature valid, but no identity policy allows Invoke


def test_verify_connect_answers(iam_auth_stack: Stack) -> None:
    api = build_api_model(iam_auth_stack, "dev")
    access = GatewayAccess(AccessControl.from_stack(iam_auth_stack), api.api_id, "dev")
    url = _signed(8080, expires=60)
    path, _, query = url.split("/", 3)[3].partition("?")
    kwargs = {"method": "GET", "host": "127.0.0.1:8080", "path": "/" + path, "raw_query": query,
              "headers": {"Host": "127.0.0.1:8080"}}
    assert access.verify_connect(**kwargs) is None  # type: ignore[arg-type]
    later = datetime.now(UTC) + timedelta(minutes=5)
    expired = access.verify_connect(**kwargs, now=later)  # type: ignore[arg-type]
    assert expired is not None and expired.status == 403
    assert expired.message.startswith("Signature expired:")
    missing = access.verify_connect(**{**kwargs, "raw_query": ""})  # type: ignore[arg-type]
    assert missing is not None and missing.message == "Missing Authentication Token"
    moved = access.verify_connect(**{**kwargs, "host": "127.0.0.1:9999",  # type: ignore[arg-type]
                                     "headers": {"Host": "127.0.0.1:9999"}})
    assert moved is not None and moved.error_type == "InvalidSignatureException"


async def test_without_iam_checks_the_route_is_open(iam_auth_stack: Stack,
                                                    auth_services: AwsServices) -> None:
    """``--no-iam``: the gateway gets no access control and verifies nothing."""
    api = build_api_model(iam_auth_stack, "dev")
    gateway = Gateway(api, TwinBackend(auth_services), stage="dev", port=0)
    await gateway.start()
    try:
        async with connect(f"ws://127.0.0.1:{gateway.port}/dev", open_timeout=5):
            assert len(gateway.connection_ids) == 1
    finally:
        await gateway.stop()
