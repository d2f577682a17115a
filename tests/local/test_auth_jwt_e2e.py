"""``auth=jwt`` end to end: ``python -m pipeline local -c auth=jwt`` + ``python -m pipeline token``.

The twin is the OIDC issuer (discovery document + JWKS over HTTP); the authorizer, unchanged,
fetches them from it as it would from Cognito or Auth0. A token minted by the ``token`` command
connects and its ``sub`` reaches the roster and the envelope; every bad token is refused with
its reason in the authorizer's log and never reaches the roster.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa
from polling import until
from websockets.exceptions import InvalidStatus

from pipeline.aws.limits import REGION
from pipeline.local.harness import Twin, start_twin, stop_twin
from pipeline.local.oidc import TwinIssuer

pytestmark = [pytest.mark.twin, pytest.mark.synth]
TIMEOUT_S = 15.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def oidc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oidc")


@pytest.fixture(scope="module")
def jwt_twin(jwt_assembly: Path, oidc_dir: Path) -> Iterator[Twin]:
    running = start_twin(jwt_assembly, "--oidc-dir", str(oidc_dir))
    yield running
    stop_twin(running)


def token_cli(oidc_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "token", "--oidc-dir", str(oidc_dir), *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def _aws(twin: Twin, service: str) -> Any:
    return boto3.client(service, endpoint_url=twin.aws, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def _principals(twin: Twin) -> list[str]:
    roster = _aws(twin, "dynamodb")
    (table,) = roster.list_tables()["TableNames"]
    items = roster.scan(TableName=table, FilterExpression="sk = :m",
                        ExpressionAttributeValues={":m": {"S": "META"}})["Items"]
    return sorted(i.get("principal", {}).get("S", "") for i in items)


async def _status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, open_timeout=TIMEOUT_S):
            pass
    return refused.value.response.status_code


def test_the_twin_serves_discovery_and_jwks_for_its_issuer(jwt_twin: Twin) -> None:
    assert jwt_twin.issuer is not None and jwt_twin.ws.startswith(
        jwt_twin.issuer.replace("http:", "ws:"))
    with urllib.request.urlopen(jwt_twin.issuer + "/.well-known/openid-configuration") as r:
        discovery = json.load(r)
    assert discovery["issuer"] == jwt_twin.issuer
    with urllib.request.urlopen(discovery["jwks_uri"]) as r:
        (key,) = json.load(r)["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in key  # never the private part
    assert any("trusts the twin's OIDC issuer" in line for line in jwt_twin.lines())


async def test_a_token_from_the_token_command_connects_with_its_principal(
    jwt_twin: Twin, oidc_dir: Path,
) -> None:
    kinesis = _aws(jwt_twin, "kinesis")
    (stream,) = kinesis.list_streams()["StreamNames"]
    iterators = [kinesis.get_shard_iterator(
        StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="LATEST")["ShardIterator"]
        for s in kinesis.list_shards(StreamName=stream)["Shards"]]
    token = token_cli(oidc_dir, "--sub", "alice", "--ttl", "600", "--claim", "role=admin")
    assert jwt.decode(token, options={"verify_signature": False})["role"] == "admin"
    marker = f"jwt-{time.monotonic_ns()}"
    async with websockets.connect(f"{jwt_twin.ws}?token={token}", open_timeout=TIMEOUT_S) as ws:
        await ws.send(json.dumps({"action": "echo", "data": marker}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        assert "alice" in _principals(jwt_twin)
    assert reply["action"] == "echo" and reply["data"] == marker
    envelopes = []
    for iterator in iterators:
        for record in kinesis.get_records(ShardIterator=iterator)["Records"]:
            data = record["Data"]
            envelopes.append(json.loads(data if isinstance(data, bytes) else base64.b64decode(data)))
    (envelope,) = [e for e in envelopes if marker in e["body"]]
    assert envelope["principal"] == "alice"


async def test_bad_tokens_are_refused_with_the_reason_logged_and_no_roster_write(
    jwt_twin: Twin, oidc_dir: Path,
) -> None:
    issuer = TwinIssuer.load(oidc_dir)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = TwinIssuer(issuer.issuer, issuer.audience, other_key)
    now = int(time.time())
    none_token = jwt.encode({"iss": issuer.issuer, "aud": issuer.audience, "sub": "mallory",
                             "exp": now + 60}, None, algorithm="none", headers={"kid": issuer.kid})
    cases = {
        # another key, presented under the twin key's kid: the signature does not verify
        "bad_signature": jwt.encode(
            {"iss": issuer.issuer, "aud": issuer.audience, "sub": "mallory", "exp": now + 60},
            other_key, algorithm="RS256", headers={"kid": issuer.kid}),
        "unknown_key": forged.mint("mallory"),  # its own kid, which the JWKS does not list
        "unsupported_alg": none_token,
        "expired": token_cli(oidc_dir, "--sub", "mallory", "--ttl", "-120"),
        "wrong_audience": token_cli(oidc_dir, "--sub", "mallory", "--claim", "aud=another-app"),
    }
    before = _principals(jwt_twin)
    # Without ?token= the identity source is missing: API Gateway's 401, nothing invoked.
    assert await _status(jwt_twin.ws) == 401
    for reason, token in cases.items():
        url = jwt_twin.ws + f"?token={token}"
        assert await _status(url) == 403, reason
        # the authorizer's log line reaches the twin's output through its worker's pipe: wait
        await until(lambda r=reason: any(f'"reason": "{r}"' in line
                                         for line in jwt_twin.lines()), timeout=10)
    assert "mallory" not in _principals(jwt_twin)
    assert len(_principals(jwt_twin)) <= len(before)


async def test_the_python_client_stops_on_a_refused_connect(
    jwt_twin: Twin, oidc_dir: Path,
) -> None:
    from pipeline.client import ClientOptions, connect

    expired = token_cli(oidc_dir, "--sub", "mallory", "--ttl", "-120")
    client = connect(jwt_twin.ws, token=expired, options=ClientOptions(backoff_base_s=0.01))
    await client.wait_state("closed", TIMEOUT_S)
    assert (client.reason, client.attempts) == ("unauthorized", 1)  # 403: no retry at all
    fresh = connect(jwt_twin.ws, token=lambda: token_cli(oidc_dir, "--sub", "bob"))
    await fresh.wait_state("open", TIMEOUT_S)
    assert "bob" in _principals(jwt_twin)
    await fresh.close()


def test_the_issuer_warning_names_a_different_issuer_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.local.twin import _adopt_issuer
    from pipeline.local.workers import FunctionSpec

    url = "http://127.0.0.1:8080"
    spec = FunctionSpec(name="Auth", arn="arn:aws:lambda:us-east-1:1:function:Auth",
                        handler="handler.handler", code_dir=tmp_path,
                        environment={"AUTH_MODE": "jwt", "JWT_ISSUER": url, "JWT_AUDIENCE": "a"})
    with caplog.at_level("WARNING"):
        (adopted,), issuer = _adopt_issuer([spec], url, tmp_path)
    (line,) = [r.getMessage() for r in caplog.records if "trusts" in r.getMessage()]
    assert f"issuer {url} (audience a)" in line and "instead of" not in line
    assert adopted.environment["JWT_ISSUER"] == url and issuer is not None
    caplog.clear()
    with caplog.at_level("WARNING"):  # a reload keeps the issuer (and its key): no second line
        _, again = _adopt_issuer([spec], url, tmp_path, issuer)
    assert again is issuer and not caplog.records
