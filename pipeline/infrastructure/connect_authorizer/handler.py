"""``$connect`` REQUEST authorizer: verifies an HS256 JWT, returns an IAM policy.

The token comes from the query string only: ``?token=<jwt>``, which every client can set,
browsers included (``new WebSocket(url + "?token=" + jwt)``). It is never read from
``Sec-WebSocket-Protocol``: a browser that offers a subprotocol drops the connection unless the
handshake answer echoes one of them, and only a Lambda ``$connect`` integration can return that
header (AWS documents the echo for Lambda only:
https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-connect-route-subprotocol.html);
this stack's ``$connect`` is a DynamoDB PutItem with no Lambda, so it answers no subprotocol.

The authorizer has no identity source on purpose: API Gateway answers 401 without calling the
function when a configured identity source is missing, which leaves no log line saying why;
without one, a missing token reaches the function, is denied (403) and logged as
``missing_token``. WebSocket authorizers do not cache, so it runs for every connect anyway.
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html

The signing secret is read once per container from Secrets Manager (``TOKEN_SECRET_ARN``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from typing import Any

LEEWAY_SECONDS = 5
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_secret: bytes | None = None


class TokenError(Exception):
    """The token is missing or invalid; ``reason`` is a short code (logged, never returned)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_token(secret: bytes, claims: dict[str, Any]) -> str:
    """An HS256 JWT for ``claims`` (used by tests, the twin and clients that mint tokens)."""
    header = b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url_encode(signature)}"


def verify_token(token: str, secret: bytes, now: float) -> dict[str, Any]:
    """The claims of a valid token; raises :class:`TokenError` otherwise."""
    if not _JWT_SHAPE.match(token):
        raise TokenError("malformed")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(payload_b64))
        signature = b64url_decode(signature_b64)
    except (ValueError, UnicodeDecodeError):
        raise TokenError("malformed") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("malformed")
    if header.get("alg") != "HS256":
        raise TokenError("unsupported_alg")  # never "none", never a public-key alg
    expected = hmac.new(secret, f"{header_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise TokenError("bad_signature")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenError("missing_exp")
    if now > exp + LEEWAY_SECONDS:
        raise TokenError("expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or now + LEEWAY_SECONDS < nbf):
        raise TokenError("not_yet_valid")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise TokenError("missing_sub")
    return claims


def find_token(event: dict[str, Any]) -> str:
    """The token from ``?token=`` (never from a header: see the module docstring)."""
    query = event.get("queryStringParameters") or {}
    token = query.get("token") if isinstance(query, dict) else None
    if isinstance(token, str) and token:
        return token
    raise TokenError("missing_token")


def policy(principal: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    """The authorizer response API Gateway expects."""
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
            ],
        },
        "context": context,
    }


def authorize(event: dict[str, Any], secret: bytes, now: float) -> dict[str, Any]:
    """Allow with ``principalId`` = the token's ``sub``, or Deny (API Gateway answers 403)."""
    resource = str(event.get("methodArn", "*"))
    try:
        claims = verify_token(find_token(event), secret, now)
    except TokenError as exc:
        print(json.dumps({"level": "INFO", "message": "connect denied", "reason": exc.reason}))
        return policy("anonymous", "Deny", resource, {"principal": "", "reason": exc.reason})
    sub = str(claims["sub"])
    return policy(sub, "Allow", resource, {"principal": sub})


def _load_secret() -> bytes:
    global _secret
    if _secret is None:
        import boto3  # provided by the Lambda runtime

        client = boto3.client("secretsmanager")
        value = client.get_secret_value(SecretId=os.environ["TOKEN_SECRET_ARN"])
        _secret = str(value["SecretString"]).encode()
    return _secret


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return authorize(event, _load_secret(), time.time())
