#!/usr/bin/env python3
"""CDK entry point: ``cdk synth -c stage=dev|prod -c shards=N -c auth=none|iam|token``."""

from __future__ import annotations

from aws_cdk import App

from pipeline.infrastructure.synth import create_stack

app = App()
create_stack(app)
app.synth()
