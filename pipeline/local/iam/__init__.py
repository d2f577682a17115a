"""IAM checked locally: identity policies of the stack's roles, enforced where AWS enforces them.

- :mod:`policy`: the evaluator (pure logic).
- :mod:`access`: the stack's roles, per-function credentials, cached decisions.
- :mod:`requests`: an AWS API request in IAM terms (caller key, action, resources).
- :mod:`wsgi`: the middleware in front of moto's server (function roles' boto3 calls).
- :mod:`gateway_access`: SigV4 ``$connect`` verification and @connections authorization.
- :mod:`integration`: API Gateway integrations' credentials role (``AwsServices.call_aws``).
- :mod:`mappings`: event source mapping permissions (what ``CreateEventSourceMapping`` checks).

``python -m pipeline local --no-iam`` turns every check off.
"""

from __future__ import annotations

from pipeline.local.iam.access import (
    AccessControl,
    Caller,
    function_access_key,
    function_secret_key,
)
from pipeline.local.iam.errors import Denial, IamError, PolicyError, denied_message
from pipeline.local.iam.policy import PolicyDecision, evaluate, parse_policy

__all__ = [
    "AccessControl",
    "Caller",
    "Denial",
    "IamError",
    "PolicyDecision",
    "PolicyError",
    "denied_message",
    "evaluate",
    "function_access_key",
    "function_secret_key",
    "parse_policy",
]
