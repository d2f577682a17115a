"""``$connect`` REQUEST authorizer: verifies a JWT with PyJWT, returns an IAM policy.

The token comes from the query string only, ``?token=<jwt>`` (browsers cannot set headers on a
WebSocket upgrade). It is never read from ``Sec-WebSocket-Protocol``: a browser that offers a
subprotocol drops the connection unless the handshake answer echoes one, and only a Lambda
``$connect`` integration can return that header (AWS documents the echo for Lambda only:
https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-connect-route-subprotocol.html).
Two modes, chosen by the ``AUTH_MODE`` environment variable:

* ``jwt`` (``JWT_ISSUER``, ``JWT_AUDIENCE``): a token from any OIDC issuer (Cognito, Auth0,
  Okta...). The issuer's discovery document (``<issuer>/.well-known/openid-configuration``) names
  its JWKS; :class:`jwt.PyJWKClient` fetches it and keeps the keys across invocations of this
  container. A token whose ``kid`` is unknown makes it refetch the JWKS (key rotation), at most
  once per :data:`JWKS_REFETCH_COOLDOWN_S`, so a flood of made-up ``kid`` values cannot hammer
  the issuer. RS256 and ES256 only (never ``none``, never HS256 with a public key as secret);
  ``iss``, ``exp``, ``nbf`` with :data:`LEEWAY_SECONDS`, and ``aud`` must contain the audience,
  or, for a Cognito access token (which has no ``aud``), ``client_id`` must equal it
  (https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html).
* ``token`` (``TOKEN_SECRET_ARN``): an HS256 token signed with the stack's Secrets Manager secret,
  for teams that mint their own tokens.

Allow: ``principalId`` = the token's ``sub``. Deny (API Gateway answers 403) with the reason
logged, never returned to the client. Its identity source is ``route.request.querystring.token``
(``connect_auth.TOKEN_IDENTITY_SOURCE``): API Gateway answers 401 without invoking it when
``?token=`` is missing or empty, so it sees only connects that carry one (and is invoked on
each of them: WebSocket authorizers do not cache).
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt

LEEWAY_SECONDS = 30
OIDC_ALGORITHMS = ("RS256", "ES256")
JWKS_REFETCH_COOLDOWN_S = 60.0
JWKS_LIFESPAN_S = 3600.0
HTTP_TIMEOUT_S = 3.0
_PYJWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAlgorithmError, "unsupported_alg"),
    (jwt.PyJWKClientConnectionError, "jwks_unavailable"),
    (jwt.PyJWKClientError, "unknown_key"),
    (jwt.DecodeError, "malformed"),
)


class TokenError(Exception):
    """The token is missing or invalid; ``reason`` is a short code (logged, never returned)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing_{exc.claim}"
    for kind, reason in _PYJWT_REASONS:
        if isinstance(exc, kind):
            return reason
    return "invalid"


def encode_token(secret: bytes, claims: dict[str, Any]) -> str:
    """An HS256 JWT for ``claims`` (for clients that mint ``auth=token`` tokens, and tests)."""
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(token: str, secret: bytes) -> dict[str, Any]:
    """The claims of a valid HS256 token (``exp`` and ``sub`` required); else :class:`TokenError`."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as exc:
        raise TokenError(_reason(exc)) from None
    return _with_subject(claims)


def _with_subject(claims: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise TokenError("missing_sub")
    return claims


def discover_jwks_uri(issuer: str, timeout: float = HTTP_TIMEOUT_S) -> str:
    """The ``jwks_uri`` of the issuer's OpenID discovery document (its ``issuer`` must match)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        document = json.load(response)
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise TokenError("issuer_mismatch")
    uri = document.get("jwks_uri")
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise TokenError("no_jwks_uri")
    return uri


class OidcVerifier:
    """Verifies tokens of one issuer for one audience; keeps its JWKS client across calls."""

    def __init__(self, issuer: str, audience: str,
                 discover: Callable[[str], str] = discover_jwks_uri) -> None:
        self.issuer = issuer
        self.audience = audience
        self._discover = discover
        self._keys: jwt.PyJWKClient | None = None

    def _client(self) -> jwt.PyJWKClient:
        if self._keys is None:  # discovered once per container; retried if it failed
            try:
                uri = self._discover(self.issuer)
            except (OSError, ValueError) as exc:
                raise TokenError("discovery_unavailable") from exc
            self._keys = jwt.PyJWKClient(
                uri, cache_keys=False, lifespan=JWKS_LIFESPAN_S, timeout=HTTP_TIMEOUT_S,
                cooldown_duration=JWKS_REFETCH_COOLDOWN_S)
        return self._keys

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; raises :class:`TokenError` with the reason otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed") from None
        if header.get("alg") not in OIDC_ALGORITHMS:
            raise TokenError("unsupported_alg")  # checked before any key is looked up
        try:
            key = self._client().get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=list(OIDC_ALGORITHMS), issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False})
        except jwt.PyJWTError as exc:
            raise TokenError(_reason(exc)) from None
        if not self._audience_matches(claims):
            raise TokenError("wrong_audience")
        return _with_subject(claims)

    def _audience_matches(self, claims: dict[str, Any]) -> bool:
        aud = claims.get("aud")
        if aud is None:  # Cognito access tokens carry the app client id as client_id
            return claims.get("token_use") == "access" and claims.get("client_id") == self.audience
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        return self.audience in audiences


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


def authorize_with(event: dict[str, Any], verify: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Allow with ``principalId`` = the verified token's ``sub``, or Deny with the reason logged."""
    resource = str(event.get("methodArn", "*"))
    try:
        claims = verify(find_token(event))
    except TokenError as exc:
        request = event.get("requestContext") or {}
        print(json.dumps({"level": "INFO", "message": "connect denied", "reason": exc.reason,
                          "connectionId": request.get("connectionId")}))
        return policy("anonymous", "Deny", resource, {"principal": "", "reason": exc.reason})
    sub = str(claims["sub"])
    return policy(sub, "Allow", resource, {"principal": sub})


def authorize(event: dict[str, Any], secret: bytes) -> dict[str, Any]:
    """``auth=token``: :func:`authorize_with` an HS256 secret."""
    return authorize_with(event, lambda token: verify_token(token, secret))


_secret: bytes | None = None
_verifier: OidcVerifier | None = None


def _load_secret() -> bytes:
    global _secret
    if _secret is None:
        import boto3  # provided by the Lambda runtime

        client = boto3.client("secretsmanager")
        value = client.get_secret_value(SecretId=os.environ["TOKEN_SECRET_ARN"])
        _secret = str(value["SecretString"]).encode()
    return _secret


def _load_verifier() -> OidcVerifier:
    global _verifier
    if _verifier is None:
        _verifier = OidcVerifier(os.environ["JWT_ISSUER"], os.environ["JWT_AUDIENCE"])
    return _verifier


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    if os.environ.get("AUTH_MODE") == "jwt":
        return authorize_with(event, _load_verifier().verify)
    return authorize(event, _load_secret())
