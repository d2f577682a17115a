"""PipelineConfig.from_context: defaults, types from the CLI (strings), clear refusals."""

from __future__ import annotations

import pytest

from pipeline.infrastructure import ConfigError
from pipeline.infrastructure.config import PipelineConfig


def config(**context: object) -> PipelineConfig:
    return PipelineConfig.from_context(context.get)


def test_defaults_are_dev_two_shards_no_auth_one_day() -> None:
    cfg = config()
    assert (cfg.stage, cfg.shards, cfg.auth, cfg.retention_hours) == ("dev", 2, "none", 24)
    assert cfg.stack_name == "WebSocketPipeline-dev"
    assert cfg.connection_ttl_seconds == 10800
    assert (cfg.api_gateway_account_role, cfg.retain_stream) == ("create", False)


def test_the_stream_is_retained_by_default_on_prod_only_and_context_overrides() -> None:
    assert config(stage="prod", auth="token").retain_stream is True
    assert config(stage="prod", auth="none", retainStream="false").retain_stream is False
    assert config(stage="dev", retainStream="TRUE").retain_stream is True
    assert config(apiGatewayAccountRole="existing").api_gateway_account_role == "existing"


def test_cli_strings_are_parsed_and_prod_defaults_to_jwt() -> None:
    issuer = {"jwtIssuer": "https://login.example.com/", "jwtAudience": "app"}
    cfg = config(stage="prod", shards="8", retentionHours="168", **issuer)
    assert (cfg.stage, cfg.shards, cfg.auth, cfg.retention_hours) == ("prod", 8, "jwt", 168)
    assert (cfg.jwt_issuer, cfg.jwt_audience, cfg.cognito) == ("https://login.example.com/",
                                                               "app", False)
    assert config(stage="prod", auth="token").auth == "token"
    assert config(stage="prod", auth="none").auth == "none"
    assert config(auth="iam").auth == "iam"


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"shards": "0"}, "shards"),
        ({"shards": "two"}, "shards"),
        ({"shards": True}, "shards"),
        ({"retentionHours": "23"}, "retentionHours"),
        ({"retentionHours": "8761"}, "retentionHours"),
        ({"auth": "basic"}, "auth"),
        ({"stage": "Prod!"}, "stage"),
        ({"apiGatewayAccountRole": "shared"}, "apiGatewayAccountRole"),
        ({"retainStream": "maybe"}, "retainStream"),
        ({"stage": "prod"}, "jwtIssuer"),  # jwt, prod's default, needs an issuer
        ({"auth": "jwt", "jwtIssuer": "http://login.example.com"}, "jwtIssuer"),  # https only
        ({"auth": "jwt", "jwtIssuer": "https://login.example.com"}, "jwtAudience"),
        ({"auth": "jwt", "cognito": "true", "jwtAudience": "x"}, "cognito"),
        ({"auth": "token", "jwtIssuer": "https://login.example.com"}, "jwtIssuer"),
        ({"cognito": "yes"}, "cognito"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(context: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**context)
    assert caught.value.key == key
    assert f"context {key}=" in str(caught.value)


def test_cognito_sets_issuer_and_audience_itself_and_loopback_http_is_allowed() -> None:
    cfg = config(auth="jwt", cognito="true")
    assert (cfg.cognito, cfg.jwt_issuer, cfg.jwt_audience) == (True, None, None)
    local = config(auth="jwt", jwtIssuer="http://127.0.0.1:8080", jwtAudience="a")
    assert local.jwt_issuer == "http://127.0.0.1:8080"


def test_stream_mode_and_alarm_email_are_read_and_checked() -> None:
    assert config().stream_mode == "provisioned" and config().alarm_email is None
    cfg = config(streamMode="on-demand", alarmEmail="ops@example.com")
    assert (cfg.stream_mode, cfg.alarm_email) == ("on-demand", "ops@example.com")
    with pytest.raises(ConfigError) as caught:
        config(streamMode="ondemand")
    assert str(caught.value) == ("context streamMode='ondemand' is invalid: expected "
                                 "provisioned | on-demand")
    with pytest.raises(ConfigError) as caught:
        config(alarmEmail="not-an-address")
    assert caught.value.key == "alarmEmail"
