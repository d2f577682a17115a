#!/usr/bin/env python3
"""CDK entry point: ``cdk synth -c stage=dev|prod -c shards=N -c auth=none|iam|token|jwt``.

``auth=jwt`` (prod's default) takes ``-c jwtIssuer=URL -c jwtAudience=ID`` or ``-c cognito=true``.

Also ``-c retentionHours=N``, ``-c apiGatewayAccountRole=create|existing``,
``-c retainStream=true|false``, ``-c streamMode=provisioned|on-demand`` and
``-c alarmEmail=ADDRESS`` (README "Deploy"). Only reads the context and creates the stack; bad
context values and bad ``consumers/<name>/settings.json`` files exit with one line naming the
key and what it accepts.
"""

from __future__ import annotations

import os
import sys

# jsii reads this when its node runtime starts (the first aws_cdk import), so it is set here for
# a bare `npx cdk synth|deploy` too, not only by the Makefile: otherwise Node 20 prints an
# 11-line end-of-life banner, as Python byte strings, on every synth. A comma list of majors.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22")

from aws_cdk import App  # after the environment above

from pipeline.infrastructure import InfrastructureError
from pipeline.infrastructure.synth import create_stack
from pipeline.registry import RegistryError

app = App()
try:
    create_stack(app)
except (InfrastructureError, RegistryError) as exc:  # one line, no traceback
    sys.exit(f"error: {exc}")
app.synth()
