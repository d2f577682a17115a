"""RuntimeLayer: the one Lambda layer every consumer ships (``pipeline.runtime`` + its wheels)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from pipeline.infrastructure.packaging import build_layer


class RuntimeLayer(Construct):
    """A layer version built by :func:`pipeline.infrastructure.packaging.build_layer` (no Docker)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        directory: Path | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.directory = directory or build_layer()
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="pipeline.runtime and its dependencies (manylinux2014 aarch64, cp312)",
            code=lambda_.Code.from_asset(str(self.directory)),
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
        )
