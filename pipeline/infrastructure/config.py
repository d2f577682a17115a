"""The stack's settings, read once from the CDK context."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.infrastructure import ConfigError
from pipeline.names import stack_name

AuthMode = Literal["none", "iam", "token", "jwt"]
AUTH_MODES: tuple[AuthMode, ...] = ("none", "iam", "token", "jwt")
# An OIDC issuer is https; plain http only on the loopback interface (the local twin's issuer).
ISSUER_PATTERN = re.compile(r"^(https://[^\s/?#]+|http://(127\.0\.0\.1|localhost)(:\d+)?)(/[^\s?#]*)?$")
AUDIENCE_PATTERN = re.compile(r"^[\x21-\x7e]{1,256}$")
# API Gateway's CloudWatch role is one setting per account and region (AWS::ApiGateway::Account):
# "create" makes it in this stack and retains it (docs/deploy.md); "existing" leaves the account
# setting alone, for a region where another stack or an administrator already set it.
AccountRoleMode = Literal["create", "existing"]
ACCOUNT_ROLE_MODES: tuple[AccountRoleMode, ...] = ("create", "existing")
BOOLEANS = {"true": True, "false": False}
StreamMode = Literal["provisioned", "on-demand"]
# ``on-demand``: AWS manages the shards (``shards`` is then not used) and bills per GB.
# https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html
STREAM_MODES: tuple[StreamMode, ...] = ("provisioned", "on-demand")
STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Kinesis retention is 24 h .. 8760 h (365 days).
# https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html
MIN_RETENTION_HOURS = 24
MAX_RETENTION_HOURS = 8760
# A provisioned stream starts with at least one shard; keep a synth-time sanity bound.
MAX_SHARDS = 500
DEFAULT_CONNECTIONS_RPS = 5000
MAX_CONNECTIONS_RPS = 1_000_000  # the account quota can be raised


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the stack varies on. Built from CDK context with :meth:`from_context`."""

    stage: str = "dev"
    shards: int = 2
    auth: AuthMode = "none"
    retention_hours: int = 24
    stream_mode: StreamMode = "provisioned"
    alarm_email: str | None = None
    connection_ttl_seconds: int = 10800  # 3 h: longer than the 2 h connection limit
    throttle_rate_limit: float = 1000.0
    throttle_burst_limit: int = 2000
    api_gateway_account_role: AccountRoleMode = "create"
    # Keep the stream (and its records) when the stack is deleted; default: prod only.
    retain_stream: bool = False
    # auth=jwt: the OIDC issuer and the audience (client id) tokens must carry, or a Cognito
    # user pool and app client created in the stack (``cognito``), which then set both.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    cognito: bool = False
    # @connections posts per second this stage may make, split between the posting functions:
    # half the account's 10,000/s quota by default, leaving room for other APIs and stages.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
    connections_rps: int = DEFAULT_CONNECTIONS_RPS

    @property
    def stack_name(self) -> str:
        return stack_name(self.stage)

    @classmethod
    def from_context(cls, get: Callable[[str], object]) -> PipelineConfig:
        """Read ``stage``, ``shards``, ``auth``, ``retentionHours``, ``apiGatewayAccountRole``,
        ``retainStream``, ``streamMode``, ``alarmEmail``, ``jwtIssuer``, ``jwtAudience``,
        ``cognito``, ``connectionsRps`` (``get`` returns None if unset)."""
        stage = str(get("stage") or "dev")
        if not STAGE_PATTERN.match(stage):
            raise ConfigError("stage", stage, f"a name matching {STAGE_PATTERN.pattern}")
        shards = _int(get("shards"), "shards", 2, 1, MAX_SHARDS)
        retention = _int(
            get("retentionHours"), "retentionHours", 24, MIN_RETENTION_HOURS, MAX_RETENTION_HOURS
        )
        auth = _choice(get("auth"), "auth", default_auth(stage), AUTH_MODES)
        role = _choice(get("apiGatewayAccountRole"), "apiGatewayAccountRole", "create",
                       ACCOUNT_ROLE_MODES)
        retain = _bool(get("retainStream"), "retainStream", default_retain_stream(stage))
        issuer, audience, cognito = _jwt_settings(get, auth)
        mode = _choice(get("streamMode"), "streamMode", "provisioned", STREAM_MODES)
        email_raw = get("alarmEmail")
        email = str(email_raw) if email_raw not in (None, "") else None
        if email is not None and not EMAIL_PATTERN.match(email):
            raise ConfigError("alarmEmail", email, "an e-mail address (name@example.com)")
        rps = _int(get("connectionsRps"), "connectionsRps", DEFAULT_CONNECTIONS_RPS, 1,
                   MAX_CONNECTIONS_RPS)
        return cls(
            connections_rps=rps,
            stage=stage,
            shards=shards,
            auth=auth,
            retention_hours=retention,
            api_gateway_account_role=role,
            retain_stream=retain,
            stream_mode=mode,
            alarm_email=email,
            jwt_issuer=issuer,
            jwt_audience=audience,
            cognito=cognito,
        )


def default_auth(stage: str) -> AuthMode:
    """``jwt`` (an OIDC issuer's tokens) for prod, ``none`` for every other stage."""
    return "jwt" if stage == "prod" else "none"


def _jwt_settings(get: Callable[[str], object], auth: str) -> tuple[str | None, str | None, bool]:
    """``jwtIssuer``/``jwtAudience``/``cognito``: exactly one source of issuer and audience."""
    cognito = _bool(get("cognito"), "cognito", False)
    issuer_raw, audience_raw = get("jwtIssuer"), get("jwtAudience")
    # Kept exactly as given: `iss` must equal it (Auth0 issuers end with "/", Cognito's do not).
    issuer = str(issuer_raw) if issuer_raw not in (None, "") else None
    audience = str(audience_raw) if audience_raw not in (None, "") else None
    if auth != "jwt":
        if cognito or issuer or audience:
            key = "cognito" if cognito else "jwtIssuer" if issuer else "jwtAudience"
            raise ConfigError(key, get(key), "only with auth=jwt")
        return None, None, False
    if cognito:
        if issuer or audience:
            raise ConfigError("cognito", "true", "alone: the user pool sets issuer and audience")
        return None, None, True
    if issuer is None or not ISSUER_PATTERN.match(issuer):
        raise ConfigError("jwtIssuer", issuer_raw,
                          "an https issuer URL (auth=jwt; or -c cognito=true)")
    if audience is None or not AUDIENCE_PATTERN.match(audience):
        raise ConfigError("jwtAudience", audience_raw,
                          "the client id tokens carry as aud (auth=jwt; or -c cognito=true)")
    return issuer, audience, False


def _choice(raw: object, key: str, default: str, choices: tuple[str, ...]) -> Any:
    """``raw`` as one of ``choices`` (``default`` when unset), else a ConfigError naming them."""
    value = str(raw) if raw not in (None, "") else default
    if value not in choices:
        raise ConfigError(key, value, " | ".join(choices))
    return value


def _bool(raw: object, key: str, default: bool) -> bool:
    if raw in (None, ""):
        return default
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in BOOLEANS:
        return BOOLEANS[str(raw).lower()]
    raise ConfigError(key, raw, "true | false")


def default_retain_stream(stage: str) -> bool:
    """Retain the stream on ``prod`` (unconsumed records survive a mistaken destroy), not elsewhere."""
    return stage == "prod"


def _int(raw: object, key: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise ConfigError(key, raw, f"an integer {low}..{high}")
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigError(key, raw, f"an integer {low}..{high}") from None
    if not low <= value <= high:
        raise ConfigError(key, raw, f"an integer {low}..{high}")
    return value
