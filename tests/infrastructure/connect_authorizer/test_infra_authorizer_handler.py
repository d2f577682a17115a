"""The $connect token authorizer, called as API Gateway would, without AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.infrastructure.connect_authorizer.handler import (
    TokenError,
    authorize,
    b64url_decode,
    b64url_encode,
    encode_token,
    find_token,
    verify_token,
)

SECRET = b"k" * 64
NOW = 1_700_000_000.0
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
    return encode_token(SECRET, {"sub": "alice", "exp": NOW + 60, **claims})


def effect(result: dict[str, Any]) -> str:
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"] == METHOD_ARN
    return str(statement["Effect"])


def test_valid_query_token_allows_with_principal() -> None:
    result = authorize(event({"token": token()}), SECRET, NOW)
    assert effect(result) == "Allow"
    assert result["principalId"] == "alice"
    assert result["context"] == {"principal": "alice"}


@pytest.mark.parametrize("name", ["Sec-WebSocket-Protocol", "sec-websocket-protocol"])
def test_a_token_in_sec_websocket_protocol_is_not_read(name: str) -> None:
    """A browser offering a subprotocol fails unless the answer echoes one, and no non-Lambda
    $connect can echo it, so the subprotocol is not a way to pass the token."""
    headers = {name: f"pipeline.v1, {token(sub='bob')}"}
    result = authorize(event(headers=headers), SECRET, NOW)
    assert effect(result) == "Deny"
    assert result["context"]["reason"] == "missing_token"
    assert find_token(event({"token": token(sub="query")}, headers)) == token(sub="query")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (token(exp=NOW - 3600), "expired"),
        (token(nbf=NOW + 3600), "not_yet_valid"),
        (encode_token(b"other-secret", {"sub": "alice", "exp": NOW + 60}), "bad_signature"),
        ("not-a-jwt", "malformed"),
        ("a.b.c", "malformed"),
        (encode_token(SECRET, {"exp": NOW + 60}), "missing_sub"),
        (encode_token(SECRET, {"sub": "alice"}), "missing_exp"),
    ],
)
def test_invalid_tokens_are_denied_with_a_reason(bad: str, reason: str) -> None:
    with pytest.raises(TokenError) as caught:
        verify_token(bad, SECRET, NOW)
    assert caught.value.reason == reason
    result = authorize(event({"token": bad}), SECRET, NOW)
    assert effect(result) == "Deny"
    assert result["context"] == {"principal": "", "reason": reason}


def test_missing_token_is_denied() -> None:
    result = authorize(event(), SECRET, NOW)
    assert effect(result) == "Deny"
    assert result["context"]["reason"] == "missing_token"
    headers = {"Sec-WebSocket-Protocol": "pipeline.v1"}  # a subprotocol but no token entry
    assert authorize(event(headers=headers), SECRET, NOW)["context"]["reason"] == "missing_token"


def test_alg_none_and_tampered_payload_are_rejected() -> None:
    header, payload, signature = token().split(".")
    none_header = b64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    with pytest.raises(TokenError, match="unsupported_alg"):
        verify_token(f"{none_header}.{payload}.{signature}", SECRET, NOW)
    claims = json.loads(b64url_decode(payload))
    forged = b64url_encode(json.dumps({**claims, "sub": "mallory"}).encode())
    with pytest.raises(TokenError, match="bad_signature"):
        verify_token(f"{header}.{forged}.{signature}", SECRET, NOW)


def test_expiry_has_a_small_leeway_only() -> None:
    assert verify_token(token(exp=NOW - 2), SECRET, NOW)["sub"] == "alice"
    with pytest.raises(TokenError, match="expired"):
        verify_token(token(exp=NOW - 30), SECRET, NOW)


def test_non_numeric_claims_are_malformed_not_crashes() -> None:
    with pytest.raises(TokenError, match="missing_exp"):
        verify_token(token(exp="tomorrow"), SECRET, NOW)
    with pytest.raises(TokenError, match="not_yet_valid"):
        verify_token(token(nbf="soon"), SECRET, NOW)
    garbage = f"{b64url_encode(b'[1]')}.{b64url_encode(b'{}')}.{b64url_encode(b'x')}"
    with pytest.raises(TokenError, match="malformed"):
        verify_token(garbage, SECRET, NOW)
