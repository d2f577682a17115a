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


def synthesize(outdir: Path, context: Mapping[str, str]) -> Path:
    """Synthesize the app for ``context`` into ``outdir``; returns the assembly directory."""
    app = App(outdir=str(outdir), context=dict(context))
    create_stack(app)
    return Path(app.synth().directory)
