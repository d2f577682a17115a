"""The AWS credentials the runtime signs its own requests with (@connections posts and
DescribeStreamSummary).

Lambda puts the execution role's keys in the environment of every function: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``, "the access keys obtained from the function's
execution role", set once for the execution environment
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
They are also the first place boto3's own chain looks (its ``EnvProvider``, when no profile is
named in code), so when both keys are set they are used as they are, in a
:class:`FrozenCredentials`, and boto3 is never imported: ``import boto3`` and a ``Session`` cost
a container ~0.43 s of CPU on its first batch here, more than the handler's whole import.

Without them (a developer's profile, SSO, a container or instance role), boto3's credential chain
is used as before: resolved once on the first request, refreshable credentials refreshing
themselves (the signer asks for frozen ones at most once per second).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
TOKEN_ENV = "AWS_SESSION_TOKEN"
LEGACY_TOKEN_ENV = "AWS_SECURITY_TOKEN"  # botocore's EnvProvider reads it when the other is unset


@dataclass(frozen=True, slots=True)
class FrozenCredentials:
    """Static keys, shaped like botocore's ``ReadOnlyCredentials`` for the signer."""

    access_key: str
    secret_key: str
    token: str | None = None

    def get_frozen_credentials(self) -> FrozenCredentials:
        return self

    def __repr__(self) -> str:  # never the secret, nor the token, in a log line
        return f"FrozenCredentials(access_key={self.access_key!r})"


def environment_credentials(environ: Mapping[str, str] | None = None) -> FrozenCredentials | None:
    """The keys in the environment, or None unless both the key id and the secret are set."""
    env = os.environ if environ is None else environ
    access_key, secret_key = env.get(ACCESS_KEY_ENV, ""), env.get(SECRET_KEY_ENV, "")
    if not access_key or not secret_key:
        return None
    token = env.get(TOKEN_ENV) or env.get(LEGACY_TOKEN_ENV) or None
    return FrozenCredentials(access_key, secret_key, token)


def credential_source(environ: Mapping[str, str] | None = None) -> Callable[[], Any]:
    """A ``() -> credentials or None`` for :class:`~.signed_http.SigV4Signer`: the environment's
    keys, else boto3's chain (imported then), resolved on the first call and kept; looked up
    again while there are none."""
    found: list[Any] = []
    sessions: list[Any] = []

    def credentials() -> Any:
        if not found:
            creds: Any = environment_credentials(environ)
            if creds is None:
                if not sessions:
                    import boto3

                    sessions.append(boto3.Session())
                creds = sessions[0].get_credentials()
                if creds is None:
                    return None
            found.append(creds)
        return found[0]

    return credentials
