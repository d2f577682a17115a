"""The $connect authorizer in ``auth=jwt`` mode against a real OIDC issuer over HTTP.

A small issuer on 127.0.0.1 serves the discovery document and the JWKS, and counts requests:
keys are fetched once and reused, a rotated key is found by refetching, a flood of unknown
``kid`` values costs at most one refetch per cooldown, and every bad token gets its reason.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from pipeline.infrastructure.connect_authorizer.handler import (
    OidcVerifier,
    TokenError,
    authorize_with,
)

AUDIENCE = "client-123"


class Issuer:
    """An OIDC issuer: discovery + JWKS over HTTP, with request counters."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.hits: dict[str, int] = {"discovery": 0, "jwks": 0}
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    issuer.hits["discovery"] += 1
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    issuer.hits["jwks"] += 1
                    body = {"keys": [issuer.public_jwk(kid, key)
                                     for kid, key in issuer.keys.items()]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def public_jwk(kid: str, key: Any) -> dict[str, Any]:
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig"}

    def add_rsa(self, kid: str) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = key
        return key

    def token(self, kid: str, key: Any = None, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "aud": AUDIENCE, "sub": "alice", "iat": now,
                   "exp": now + 300, **claims}
        return jwt.encode(payload, key or self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer()
    running.add_rsa("k1")
    yield running
    running.server.shutdown()
    running.server.server_close()


def verifier(issuer: Issuer) -> OidcVerifier:
    return OidcVerifier(issuer.url, AUDIENCE)


def reason(check: OidcVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        check.verify(token)
    return caught.value.reason


def test_a_valid_token_is_verified_and_keys_are_fetched_once(issuer: Issuer) -> None:
    check = verifier(issuer)
    for _ in range(5):
        assert check.verify(issuer.token("k1"))["sub"] == "alice"
    assert issuer.hits == {"discovery": 1, "jwks": 1}


def test_es256_and_list_audiences_are_accepted(issuer: Issuer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer.keys["ec"] = key
    check = verifier(issuer)
    assert check.verify(issuer.token("ec", alg="ES256", aud=["other", AUDIENCE]))["sub"] == "alice"


def test_cognito_access_tokens_match_on_client_id(issuer: Issuer) -> None:
    check = verifier(issuer)
    access = issuer.token("k1", aud=None, token_use="access", client_id=AUDIENCE)
    assert check.verify(access)["client_id"] == AUDIENCE
    wrong = issuer.token("k1", aud=None, token_use="access", client_id="someone-else")
    assert reason(check, wrong) == "wrong_audience"
    id_without_aud = issuer.token("k1", aud=None, token_use="id", client_id=AUDIENCE)
    assert reason(check, id_without_aud) == "wrong_audience"


def test_a_rotated_key_is_found_by_refetching_the_jwks(issuer: Issuer) -> None:
    check = OidcVerifier(issuer.url, AUDIENCE)
    assert check.verify(issuer.token("k1"))
    check._client().cooldown_duration = 0  # the cooldown has passed (tested below)
    issuer.add_rsa("k2")
    assert check.verify(issuer.token("k2"))["sub"] == "alice"
    assert issuer.hits["jwks"] == 2


def test_unknown_kids_cost_at_most_one_refetch_per_cooldown(issuer: Issuer) -> None:
    check = verifier(issuer)
    assert check.verify(issuer.token("k1"))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(50):
        assert reason(check, issuer.token(f"made-up-{n}", key=stranger)) == "unknown_key"
    assert issuer.hits["jwks"] == 1  # the first fetch started the 60 s cooldown


def test_bad_tokens_are_refused_with_their_reason(issuer: Issuer) -> None:
    check = verifier(issuer)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"k1"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(
        {"iss": issuer.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 60}).encode()).rstrip(b"=")
    cases = {
        "bad_signature": issuer.token("k1", key=other),
        "unsupported_alg": f"{header.decode()}.{payload.decode()}.",
        "expired": issuer.token("k1", exp=now - 120),
        "not_yet_valid": issuer.token("k1", nbf=now + 3600),
        "wrong_audience": issuer.token("k1", aud="another-app"),
        "wrong_issuer": issuer.token("k1", iss="https://evil.example"),
        "missing_sub": issuer.token("k1", sub=None),
        "malformed": "not-a-token",
    }
    assert {name: reason(check, token) for name, token in cases.items()} == {
        name: name for name in cases}
    hs = jwt.encode({"iss": issuer.url, "aud": AUDIENCE, "sub": "a", "exp": now + 60}, "s" * 32,
                    algorithm="HS256", headers={"kid": "k1"})
    assert reason(check, hs) == "unsupported_alg"


def test_an_unreachable_issuer_denies_and_is_retried_later(issuer: Issuer) -> None:
    check = OidcVerifier("http://127.0.0.1:9", AUDIENCE)  # discard port: refused
    result = authorize_with({"methodArn": "arn", "queryStringParameters": {
        "token": issuer.token("k1")}}, check.verify)
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert result["context"]["reason"] == "discovery_unavailable"
    check.issuer = issuer.url
    assert check.verify(issuer.token("k1"))["sub"] == "alice"  # discovery retried, now fine
