"""The runtime's credentials: the environment's keys as they are, else boto3's chain."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from botocore.credentials import RefreshableCredentials

from pipeline.runtime.credentials import (
    FrozenCredentials,
    credential_source,
    environment_credentials,
)
from pipeline.runtime.signed_http import SigV4Signer

LAMBDA = {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
          "AWS_SESSION_TOKEN": "token"}


def test_the_keys_lambda_sets_are_used_as_they_are() -> None:
    creds = environment_credentials(LAMBDA)
    assert creds == FrozenCredentials("ASIAEXAMPLE", "secret", "token")
    assert creds is not None and creds.get_frozen_credentials() is creds
    assert "secret" not in repr(creds) and "token" not in repr(creds)
    assert credential_source(LAMBDA)() == creds


def test_long_term_keys_have_no_token_and_half_a_pair_is_none() -> None:
    assert environment_credentials({"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"}
                                   ) == FrozenCredentials("AKID", "s", None)
    assert environment_credentials({"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s",
                                    "AWS_SECURITY_TOKEN": "old"}) == \
        FrozenCredentials("AKID", "s", "old")  # botocore's EnvProvider reads it too
    assert environment_credentials({"AWS_ACCESS_KEY_ID": "AKID"}) is None
    assert environment_credentials({"AWS_SECRET_ACCESS_KEY": "s"}) is None
    assert environment_credentials({}) is None


@pytest.fixture
def no_env_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No keys in the environment, no profile, config files in ``tmp_path`` only."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def test_without_env_keys_boto3_s_chain_is_used(no_env_keys: Path) -> None:
    (no_env_keys / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n")
    creds = credential_source()()
    assert creds is not None and not isinstance(creds, FrozenCredentials)
    frozen = creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key) == ("AKIDFILE", "file-secret")


def test_without_any_credentials_the_source_answers_none(no_env_keys: Path) -> None:
    assert credential_source()() is None


def test_refreshable_credentials_from_the_chain_keep_refreshing(no_env_keys: Path) -> None:
    """A ``credential_process`` profile gives refreshable credentials: the signer sees each new
    key from the next second, as it did when the runtime always used boto3's chain."""
    counter = no_env_keys / "n"
    counter.write_text("0")
    script = no_env_keys / "issue.py"
    script.write_text(
        "import json, pathlib, datetime\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1; p.write_text(str(n))\n"
        "soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': f'AKID{n}', 'SecretAccessKey': 's',\n"
        "                  'SessionToken': 't', 'Expiration': soon.isoformat()}))\n")
    (no_env_keys / "config").write_text(
        f"[default]\ncredential_process = {sys.executable} {script}\n")
    source = credential_source()
    assert isinstance(source(), RefreshableCredentials)
    now = [1_700_000_000.0]
    signer = SigV4Signer(source, "us-east-1", clock=lambda: now[0])
    first = signer.sign("h", "/dev/@connections/x", b"")["Authorization"]
    now[0] += 1  # expiring within the advisory window: botocore fetches new ones on each use
    second = signer.sign("h", "/dev/@connections/x", b"")["Authorization"]
    keys = [a.split("Credential=")[1].split("/")[0] for a in (first, second)]
    assert keys[0] != keys[1] and all(k.startswith("AKID") for k in keys)
