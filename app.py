#!/usr/bin/env python3
"""CDK entry point: ``cdk synth -c stage=dev|prod -c shards=N -c auth=none|iam|token|jwt``.

``auth=jwt`` (prod's default) takes ``-c jwtIssuer=URL -c jwtAudience=ID`` or ``-c cognito=true``.

Also ``-c retentionHours=N``, ``-c apiGatewayAccountRole=create|existing``,
``-c retainStream=true|false``, ``-c streamMode=provisioned|on-demand`` and
``-c alarmEmail=ADDRESS`` (README "Deploy"). Only reads the context and creates the stack; bad
context values exit with one line naming the key and what it accepts.
"""

from __future__ import annotations

import sys

from aws_cdk import App

from pipeline.infrastructure import InfrastructureError
from pipeline.infrastructure.synth import create_stack

app = App()
try:
    create_stack(app)
except InfrastructureError as exc:
    sys.exit(f"error: {exc}")
app.synth()
