"""The twin as an OIDC issuer for ``auth=jwt``: one RS256 key, a discovery document and a JWKS.

The ``$connect`` authorizer runs unchanged in its worker and fetches
``<issuer>/.well-known/openid-configuration`` and the JWKS it names over HTTP, exactly as it
does against Cognito or Auth0 on AWS. The synthesized template names the deployed issuer, which
the twin cannot sign for, so the twin points the authorizer's ``JWT_ISSUER`` at itself
(``http://127.0.0.1:<port>``) and says so at start-up; the audience stays the template's.

The key and the issuer's settings live in one directory (``.twin/oidc`` by default):
``key.pem`` (private, 0600, kept across restarts so issued tokens stay valid) and
``issuer.json`` (issuer URL, audience, key id), which ``python -m pipeline token`` reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_DIR = Path(".twin") / "oidc"
KEY_FILE = "key.pem"
ISSUER_FILE = "issuer.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
ALGORITHM = "RS256"


class IssuerError(Exception):
    """No usable issuer settings (no twin with ``auth=jwt`` has run with this directory)."""


def _load_or_create_key(directory: Path) -> rsa.RSAPrivateKey:
    path = directory / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise IssuerError(f"{path} is not an RSA private key")
        return key
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = directory / f".{KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.replace(tmp, path)  # concurrent twins sharing a directory end up with one key
    return _load_or_create_key(directory)


def key_id(key: rsa.RSAPublicKey) -> str:
    """A stable ``kid``: the RFC 7638 thumbprint of the public key."""
    jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"),
                           sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class TwinIssuer:
    """One issuer URL, one audience, one signing key."""

    issuer: str
    audience: str
    key: rsa.RSAPrivateKey

    @property
    def kid(self) -> str:
        return key_id(self.key.public_key())

    @classmethod
    def create(cls, directory: Path, issuer: str, audience: str) -> TwinIssuer:
        """Load (or make) the key in *directory* and record the issuer's settings there."""
        made = cls(issuer, audience, _load_or_create_key(directory))
        settings = {"issuer": issuer, "audience": audience, "kid": made.kid}
        tmp = directory / f".{ISSUER_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(settings, indent=2) + "\n")
        os.replace(tmp, directory / ISSUER_FILE)
        return made

    @classmethod
    def load(cls, directory: Path) -> TwinIssuer:
        """The issuer a twin recorded in *directory*; :class:`IssuerError` if there is none."""
        try:
            settings = json.loads((directory / ISSUER_FILE).read_text())
            return cls(str(settings["issuer"]), str(settings["audience"]),
                       _load_or_create_key(directory))
        except (OSError, ValueError, KeyError) as exc:
            raise IssuerError(
                f"no twin issuer in {directory} ({exc}): start one with "
                "`python -m pipeline local -c auth=jwt`") from None

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider Metadata the authorizer reads (the fields it and clients need)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + JWKS_PATH,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        }

    def jwks(self) -> dict[str, Any]:
        """The JWKS: the public key only."""
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}

    def mint(self, sub: str, ttl_s: int = 3600, claims: Mapping[str, Any] | None = None,
             now: float | None = None) -> str:
        """A token the twin's authorizer accepts (``claims`` are added, and may override)."""
        issued = int(time.time() if now is None else now)
        payload = {"iss": self.issuer, "aud": self.audience, "sub": sub, "iat": issued,
                   "nbf": issued, "exp": issued + ttl_s, **(claims or {})}
        return jwt.encode(payload, self.key, algorithm=ALGORITHM, headers={"kid": self.kid})


def adopt(environment: Mapping[str, str], issuer_url: str) -> tuple[dict[str, str], str] | None:
    """For an ``auth=jwt`` authorizer's environment: the same environment trusting *issuer_url*
    instead, and the audience; None for any other function."""
    if environment.get("AUTH_MODE") != "jwt":
        return None
    return {**environment, "JWT_ISSUER": issuer_url}, str(environment.get("JWT_AUDIENCE", ""))
