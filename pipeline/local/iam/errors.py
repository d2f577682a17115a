"""The IAM package's exceptions and AWS's access-denied answers.

IamError
+-- PolicyError          a policy document is malformed (bad Effect, Action and NotAction...)
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.local.errors import TwinError


class IamError(TwinError):
    """Base of every error of the local IAM checks."""


class PolicyError(IamError):
    """A policy document cannot be evaluated."""


@dataclass(frozen=True)
class Denial:
    """Who was refused what: enough to write AWS's AccessDenied message."""

    principal: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>
    action: str
    resource: str
    explicit: bool


def denied_message(denial: Denial) -> str:
    """AWS's message, e.g. ``User: arn:aws:sts::...:assumed-role/R/S is not authorized to
    perform: kinesis:PutRecord on resource: <arn> because no identity-based policy allows the
    kinesis:PutRecord action`` (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
    """
    if denial.explicit:
        reason = "with an explicit deny in an identity-based policy"
    else:
        reason = f"because no identity-based policy allows the {denial.action} action"
    return (f"User: {denial.principal} is not authorized to perform: {denial.action} "
            f"on resource: {denial.resource} {reason}")
