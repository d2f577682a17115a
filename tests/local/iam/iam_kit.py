"""Helpers of the local IAM tests (imported as ``iam_kit``: pytest puts this folder on sys.path)."""

from __future__ import annotations

import copy

from pipeline.local.cfn import Stack


def without_action(stack: Stack, action: str, *, policy_prefix: str = "") -> Stack:
    """A copy of *stack* where no policy statement (of the policies whose logical id starts
    with *policy_prefix*) grants *action* any more."""
    clone = copy.deepcopy(stack)
    for res in clone.of_type("AWS::IAM::Policy"):
        if not res.logical_id.startswith(policy_prefix):
            continue
        statements = res.properties["PolicyDocument"]["Statement"]
        for statement in statements:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            statement["Action"] = [a for a in actions if a != action]
        res.properties["PolicyDocument"]["Statement"] = [s for s in statements if s["Action"]]
    return clone


def role_of(stack: Stack, prefix: str) -> str:
    """The ARN of the role whose logical id starts with *prefix*."""
    for res in stack.of_type("AWS::IAM::Role"):
        if res.logical_id.startswith(prefix):
            return res.attributes["Arn"]
    raise KeyError(prefix)


def function_named(stack: Stack, prefix: str) -> str:
    """The physical name of the function whose logical id starts with *prefix*."""
    for res in stack.of_type("AWS::Lambda::Function"):
        if res.logical_id.startswith(prefix):
            return res.ref
    raise KeyError(prefix)
