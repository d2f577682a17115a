"""The $connect authorizer in ``auth=token`` mode (HS256 on PyJWT), called as API Gateway would."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from pipeline.infrastructure.connect_authorizer.handler import (
    LEEWAY_SECONDS,
    TokenError,
    authorize,
    encode_token,
    find_token,
    verify_token,
)

SECRET = b"k" * 64
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/$connect"


def event(query: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A WebSocket REQUEST authorizer event (the fields the handler reads)."""
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": headers or {"Host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "queryStringParameters": query,
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c1="},
    }


def token(**claims: Any) -> str:
    return encode_token(SECRET, {"sub": "alice", "exp": int(time.time()) + 60, **claims})


def effect(result: dict[str, Any]) -> str:
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"] == METHOD_ARN
    return str(statement["Effect"])


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_valid_query_token_allows_with_principal() -> None:
    result = authorize(event({"token": token()}), SECRET)
    assert effect(result) == "Allow"
    assert result["principalId"] == "alice"
    assert result["context"] == {"principal": "alice"}


def test_only_the_query_string_carries_the_token() -> None:
    headers = {"Sec-WebSocket-Protocol": f"pipeline.v1, {token(sub='header')}"}
    with pytest.raises(TokenError, match="missing_token"):
        find_token(event(headers=headers))
    assert find_token(event({"token": token(sub="query")}, headers)) == token(sub="query")


# Made when the test runs (exp relative to now), not when the module is collected.
BAD_TOKENS: dict[str, Any] = {
    "expired": lambda now: token(exp=now - 3600),
    "not_yet_valid": lambda now: token(nbf=now + 3600),
    "bad_signature": lambda now: encode_token(b"o" * 64, {"sub": "alice", "exp": now + 60}),
    "malformed": lambda now: "not-a-jwt",
    "malformed-parts": lambda now: "a.b.c",
    "missing_sub": lambda now: encode_token(SECRET, {"exp": now + 60}),
    "missing_exp": lambda now: encode_token(SECRET, {"sub": "alice"}),
    "missing_sub-empty": lambda now: encode_token(SECRET, {"sub": "", "exp": now + 60}),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_invalid_tokens_are_denied_with_a_reason(case: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad, reason = BAD_TOKENS[case](int(time.time())), case.split("-")[0]
    with pytest.raises(TokenError) as caught:
        verify_token(bad, SECRET)
    assert caught.value.reason == reason
    result = authorize(event({"token": bad}), SECRET)
    assert effect(result) == "Deny"
    assert result["context"] == {"principal": "", "reason": reason}
    logged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert logged["reason"] == reason and logged["connectionId"] == "c1="


def test_missing_token_is_denied() -> None:
    result = authorize(event(), SECRET)
    assert effect(result) == "Deny"
    assert result["context"]["reason"] == "missing_token"


def test_alg_none_and_tampered_payload_are_rejected() -> None:
    header, payload, signature = token().split(".")
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    with pytest.raises(TokenError, match="unsupported_alg"):
        verify_token(f"{none_header}.{payload}.", SECRET)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = b64(json.dumps({**claims, "sub": "mallory"}).encode())
    with pytest.raises(TokenError, match="bad_signature"):
        verify_token(f"{header}.{forged}.{signature}", SECRET)


def test_expiry_has_a_small_leeway_only() -> None:
    now = int(time.time())
    assert verify_token(token(exp=now - LEEWAY_SECONDS // 2), SECRET)["sub"] == "alice"
    with pytest.raises(TokenError, match="expired"):
        verify_token(token(exp=now - LEEWAY_SECONDS - 5), SECRET)


def test_non_numeric_claims_are_refused_not_crashes() -> None:
    with pytest.raises(TokenError):
        verify_token(token(exp="tomorrow"), SECRET)
    with pytest.raises(TokenError):
        verify_token(token(nbf="soon"), SECRET)
    garbage = f"{b64(b'[1]')}.{b64(b'{}')}.{b64(b'x')}"
    with pytest.raises(TokenError, match="malformed"):
        verify_token(garbage, SECRET)
