"""ConnectAuthorization: who may open a connection (``auth=none|iam|token``), on ``$connect`` only."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from pipeline.infrastructure.config import AuthMode
from pipeline.infrastructure.lambda_defaults import (
    ARCHITECTURE,
    RUNTIME,
    drop_redundant_role_dependency,
)
from pipeline.infrastructure.packaging import ASSET_EXCLUDES

AUTHORIZER_CODE = Path(__file__).resolve().parent / "connect_authorizer"


class ConnectAuthorization(Construct):
    """``none``: open; ``iam``: SigV4-signed connect URL; ``token``: HS256 JWT Lambda authorizer."""

    def __init__(self, scope: Construct, id: str, *, mode: AuthMode) -> None:
        super().__init__(scope, id)
        self.mode = mode
        self.authorizer: apigwv2.IWebSocketRouteAuthorizer | None = None
        self.secret: secretsmanager.Secret | None = None
        self.function: lambda_.Function | None = None
        if mode == "iam":
            self.authorizer = authorizers.WebSocketIamAuthorizer()
        elif mode == "token":
            self._token_authorizer()

    def _token_authorizer(self) -> None:
        self.secret = secretsmanager.Secret(
            self,
            "TokenSecret",
            description="HS256 key that signs WebSocket connect tokens",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="$connect authorizer: verifies the HS256 JWT",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(AUTHORIZER_CODE), exclude=ASSET_EXCLUDES),
            environment={"TOKEN_SECRET_ARN": self.secret.secret_arn},
            timeout=Duration.seconds(10),
            memory_size=256,
            log_group=logs.LogGroup(
                self,
                "Logs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        self.secret.grant_read(self.function)
        drop_redundant_role_dependency(self.function)
        # No identity source: with one, API Gateway refuses a connect without ?token= (401)
        # before invoking, leaving no log line; without, the function denies (403) and logs why.
        self.authorizer = authorizers.WebSocketLambdaAuthorizer(
            "ConnectAuthorizer", self.function, identity_source=[]
        )
