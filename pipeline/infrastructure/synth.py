"""Build the CDK app in-process (``app.py`` and the tests use the same code)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import App

from pipeline.infrastructure.config import PipelineConfig
from pipeline.infrastructure.nag import enable_nag
from pipeline.infrastructure.stack import PipelineStack
from pipeline.registry import load_all


def create_stack(app: App) -> PipelineStack:
    """The stack for the app's context, with cdk-nag enabled on the app."""
    config = PipelineConfig.from_context(app.node.try_get_context)
    stack = PipelineStack(app, config.stack_name, config=config, consumers=load_all())
    enable_nag(app)
    return stack


# What the CDK CLI adds to the context, so an in-process assembly matches a `cdk synth` one
# (resources carry ``aws:cdk:path`` and ``aws:asset:path`` metadata, which the local twin uses).
CLI_CONTEXT = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
}


def synthesize(outdir: Path, context: Mapping[str, str]) -> Path:
    """Synthesize the app for ``context`` into ``outdir``; returns the assembly directory."""
    app = App(outdir=str(outdir), context={**CLI_CONTEXT, **context})
    create_stack(app)
    return Path(app.synth().directory)
