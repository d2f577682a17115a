"""Fixtures of the local IAM tests: the real synthesized stack, resolved under its own name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stacks import aws_services

from pipeline.local.cfn import Stack, resolve_stack
from pipeline.local.services import AwsServices

# Resolved under another stack name than the twin's, so physical names never collide with
# other tests sharing moto's in-process backends.
STACK_NAME = "IamTest-dev"


@pytest.fixture(scope="session")
def iam_stack(stack_template: dict[str, Any], cloud_assembly: Path) -> Stack:
    """The `dev` template resolved as the orchestrator resolves it."""
    return resolve_stack(stack_template, STACK_NAME, cloud_assembly)


@pytest.fixture(scope="module")
def services(iam_stack: Stack) -> Iterator[AwsServices]:
    """The twin's AWS services with the stack provisioned (IAM set per test via ``.access``)."""
    with aws_services(iam_stack) as svc:
        yield svc
