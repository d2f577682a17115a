"""``python -m pipeline local -c KEY=VALUE`` and ``python -m pipeline token``: argument handling."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from pipeline.__main__ import main
from pipeline.local.cli import TWIN_JWT_CONTEXT, parse_context
from pipeline.local.oidc import TwinIssuer
from pipeline.local.token_cli import parse_claims


def test_context_pairs_become_synth_context_with_the_stage() -> None:
    assert parse_context(["shards=4", "streamMode=on-demand"], "dev") == {
        "shards": "4", "streamMode": "on-demand", "stage": "dev"}
    assert parse_context(["jwtIssuer=https://a.example/", "x=a=b"], "qa")["x"] == "a=b"


def test_auth_jwt_without_an_issuer_gets_the_twins() -> None:
    assert parse_context(["auth=jwt"], "dev") == {"auth": "jwt", "stage": "dev",
                                                  **TWIN_JWT_CONTEXT}
    own = parse_context(["auth=jwt", "jwtIssuer=https://i.example", "jwtAudience=a"], "dev")
    assert own["jwtIssuer"] == "https://i.example"
    assert "jwtIssuer" not in parse_context(["auth=jwt", "cognito=true"], "dev")


@pytest.mark.parametrize("pairs", [["novalue"], ["=x"], ["stage=prod"]])
def test_malformed_or_contradicting_pairs_are_refused(pairs: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_context(pairs, "dev")


def test_local_refuses_a_bad_pair_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "--no-synth", "-c", "stage=prod"]) == 2
    assert "use --stage" in capsys.readouterr().err


def test_claims_keep_json_types() -> None:
    assert parse_claims(["n=3", "ok=true", "roles=[\"a\"]", "name=alice", "empty="]) == {
        "n": 3, "ok": True, "roles": ["a"], "name": "alice", "empty": ""}
    with pytest.raises(ValueError):
        parse_claims(["noequals"])


def test_token_prints_a_token_of_the_recorded_issuer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    issuer = TwinIssuer.create(tmp_path, "http://127.0.0.1:1234", "aud-1")
    assert main(["token", "--sub", "alice", "--ttl", "60", "--claim", "tier=2",
                 "--oidc-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, issuer.key.public_key(), algorithms=["RS256"], audience="aud-1",
                        issuer="http://127.0.0.1:1234")
    assert (claims["sub"], claims["tier"]) == ("alice", 2)
    assert 55 <= claims["exp"] - time.time() <= 61
    assert jwt.get_unverified_header(token)["kid"] == issuer.kid
    again = TwinIssuer.create(tmp_path, "http://127.0.0.1:9999", "aud-1")
    assert again.kid == issuer.kid  # the key survives a twin restart


def test_token_without_a_twin_issuer_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["token", "--sub", "a", "--oidc-dir", str(tmp_path / "none")]) == 2
    assert "python -m pipeline local -c auth=jwt" in capsys.readouterr().err
