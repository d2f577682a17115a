"""ConnectAuthorization: who may open a connection (``auth=none|iam|token|jwt``), on ``$connect`` only.

``token`` and ``jwt`` are one Lambda REQUEST authorizer (``connect_authorizer/handler.py``, PyJWT)
with its dependencies in their own layer: PyJWT and cryptography as manylinux2014 aarch64 wheels,
installed by pip without Docker (``packaging.build_dependency_layer``, fetched by ``make install``).
``jwt`` trusts an OIDC issuer (``-c jwtIssuer=URL -c jwtAudience=ID``) or, with
``-c cognito=true``, a Cognito user pool and app client created here.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from pipeline.infrastructure.config import PipelineConfig
from pipeline.infrastructure.lambda_defaults import (
    ARCHITECTURE,
    RUNTIME,
    drop_redundant_role_dependency,
)
from pipeline.infrastructure.packaging import (
    ASSET_EXCLUDES,
    AUTHORIZER_REQUIREMENTS,
    build_dependency_layer,
)

AUTHORIZER_CODE = Path(__file__).resolve().parent / "connect_authorizer"
# Where the token travels (``?token=<jwt>``: connect_authorizer/handler.py ``find_token``).
# As the authorizer's identity source, API Gateway itself refuses a connect without it (401)
# and never invokes the function for it: "verifying all of the identity-related request
# parameters are present in the request, not null, and non-empty. Only when this is true does
# the authorizer invoke the authorizer Lambda function. Otherwise, it returns a 401
# Unauthorized response without calling the Lambda function."
# https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-authorizers.html
# (IdentitySource); https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-apigatewayv2-authorizer.html
TOKEN_IDENTITY_SOURCE = "route.request.querystring.token"


class ConnectAuthorization(Construct):
    """``none``: open; ``iam``: SigV4-signed connect URL; ``token``: HS256 JWT with a stack
    secret; ``jwt``: OIDC JWTs (RS256/ES256) of an issuer, or of a Cognito user pool made here."""

    def __init__(self, scope: Construct, id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, id)
        self.mode = config.auth
        self.authorizer: apigwv2.IWebSocketRouteAuthorizer | None = None
        self.secret: secretsmanager.Secret | None = None
        self.function: lambda_.Function | None = None
        self.user_pool: cognito.UserPool | None = None
        self.user_pool_client: cognito.UserPoolClient | None = None
        self.issuer: str | None = None
        self.audience: str | None = None
        if config.auth == "iam":
            self.authorizer = authorizers.WebSocketIamAuthorizer()
        elif config.auth == "token":
            self.secret = secretsmanager.Secret(
                self,
                "TokenSecret",
                description="HS256 key that signs WebSocket connect tokens",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    password_length=64, exclude_punctuation=True
                ),
                removal_policy=RemovalPolicy.DESTROY,
            )
            function = self._lambda_authorizer(
                "verifies the HS256 JWT",
                {"AUTH_MODE": "token", "TOKEN_SECRET_ARN": self.secret.secret_arn},
            )
            self.secret.grant_read(function)
        elif config.auth == "jwt":
            if config.cognito:
                self._user_pool()
            else:
                self.issuer, self.audience = config.jwt_issuer, config.jwt_audience
            assert self.issuer is not None and self.audience is not None
            self._lambda_authorizer(
                "verifies the OIDC issuer's JWT",
                {"AUTH_MODE": "jwt", "JWT_ISSUER": self.issuer, "JWT_AUDIENCE": self.audience},
            )
        if self.function is not None:
            # After the grants: in token mode the function must wait for its policy with
            # secretsmanager:GetSecretValue, or a connect right after the deploy could meet an
            # authorizer that cannot read its key (issue 21, finding 7).
            drop_redundant_role_dependency(self.function)

    def _user_pool(self) -> None:
        """A user pool and an app client (no secret: browsers and apps sign in with SRP)."""
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True,
                require_uppercase=True, require_symbols=True,
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # disable_o_auth: sign-in is SRP against the pool's API, no hosted UI. Without it CDK
        # enables the implicit and code grants, every scope and the callback
        # https://example.com (UserPoolClientOptions.oAuth's defaults), an OAuth surface this
        # app never uses; Cognito calls the implicit grant "a legacy authorization grant" whose
        # tokens users can intercept:
        # https://docs.aws.amazon.com/cognito/latest/developerguide/federation-endpoints-oauth-grants.html
        # https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_cognito.UserPoolClientOptions.html
        self.user_pool_client = self.user_pool.add_client(
            "AppClient",
            auth_flows=cognito.AuthFlow(user_srp=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
            disable_o_auth=True,
        )
        # https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html
        self.issuer = self.user_pool.user_pool_provider_url
        self.audience = self.user_pool_client.user_pool_client_id

    def _lambda_authorizer(self, what: str, environment: dict[str, str]) -> lambda_.Function:
        deps = build_dependency_layer(AUTHORIZER_REQUIREMENTS)
        layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            description="PyJWT and cryptography for the $connect authorizer (manylinux2014 aarch64)",
            code=lambda_.Code.from_asset(str(deps)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"$connect authorizer: {what}",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(AUTHORIZER_CODE), exclude=ASSET_EXCLUDES),
            layers=[layer],
            environment=environment,
            timeout=Duration.seconds(10),
            memory_size=256,
            log_group=logs.LogGroup(
                self,
                "Logs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        # A connect without ?token= is refused by API Gateway (401), not by the function (which
        # still denies, 403, any token it cannot verify): cheaper, and no invocation to log.
        self.authorizer = authorizers.WebSocketLambdaAuthorizer(
            "ConnectAuthorizer", self.function, identity_source=[TOKEN_IDENTITY_SOURCE]
        )
        return self.function
