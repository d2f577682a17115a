"""The stack's roles, their effective identity policies, and who holds which credentials.

:class:`AccessControl` is built once from the resolved stack. Each function gets its own access
key (``ASIA`` + 16 characters derived from its name) mapped to its execution role; any other key
(the default ``test``/``test``, the twin's own ``twin``, a user's CLI) is an administrator of the
account, as an unknown caller holding account credentials would be. Decisions are cached per
(role, action, resource): the request context a role is evaluated with never varies.
"""

from __future__ import annotations

import hashlib
import logging
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.cfn import Stack
from pipeline.local.iam.errors import Denial, PolicyError
from pipeline.local.iam.managed import managed_policy
from pipeline.local.iam.policy import Context, PolicyDecision, Statement, evaluate, parse_policy

log = logging.getLogger(__name__)

# The session name API Gateway uses when it assumes an integration's credentials role.
INTEGRATION_SESSION = "BackplaneAssumeRoleSession"
# Keys the twin accepts as administrators for SigV4 verification (boto3 tests use test/test).
ADMIN_KEYS: Mapping[str, str] = {"test": "test", "twin": "twin"}
_KEY_ALPHABET = string.ascii_uppercase + "234567"
_warned: set[str] = set()


def _derive(kind: str, name: str, length: int, alphabet: str) -> str:
    digest = hashlib.sha256(f"twin-{kind}:{name}".encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def function_access_key(function_name: str) -> str:
    """The access key id a function's workers sign with (``ASIA...``, temporary credentials)."""
    return "ASIA" + _derive("key", function_name, 16, _KEY_ALPHABET)


def function_secret_key(function_name: str) -> str:
    """The secret key paired with :func:`function_access_key`."""
    return _derive("secret", function_name, 40, string.ascii_letters + string.digits + "+/")


@dataclass(frozen=True)
class Caller:
    """The role behind a credential and the session name of its principal."""

    role_arn: str
    session: str

    @property
    def principal(self) -> str:
        role_name = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/{self.session}"


def role_context(role_arn: str) -> Context:
    """The global condition keys the twin knows for a role's requests (they never vary)."""
    return {
        "aws:PrincipalArn": role_arn,
        "aws:PrincipalAccount": ACCOUNT_ID,
        "aws:PrincipalType": "AssumedRole",
        "aws:RequestedRegion": REGION,
        "aws:SecureTransport": True,  # AWS endpoints are HTTPS only
    }


def _documents_of_role(stack: Stack, role_logical_id: str) -> Iterable[Any]:
    role = stack.resources[role_logical_id]
    for inline in role.properties.get("Policies") or []:
        if isinstance(inline, Mapping):
            yield inline.get("PolicyDocument")
    customer_managed = {r.ref: r for r in stack.of_type("AWS::IAM::ManagedPolicy")}
    for arn in role.properties.get("ManagedPolicyArns") or []:
        arn = str(arn)
        if arn in customer_managed:
            yield customer_managed[arn].properties.get("PolicyDocument")
            continue
        document = managed_policy(arn)
        if document is None:
            if arn not in _warned:
                _warned.add(arn)
                log.warning("managed policy %s is not known to the twin: it allows nothing", arn)
            continue
        yield document
    names = {role.ref, role.attributes.get("Arn", "")}
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in stack.of_type(kind):
            if names & {str(r) for r in policy.properties.get("Roles") or []}:
                yield policy.properties.get("PolicyDocument")


def role_statements(stack: Stack) -> dict[str, tuple[Statement, ...]]:
    """role ARN -> every statement of its effective identity policy."""
    out: dict[str, tuple[Statement, ...]] = {}
    for role in stack.of_type("AWS::IAM::Role"):
        statements: list[Statement] = []
        for document in _documents_of_role(stack, role.logical_id):
            try:
                statements.extend(parse_policy(document))
            except PolicyError as exc:  # CloudFormation would refuse it; the twin denies
                log.warning("role %s: ignoring a malformed policy: %s", role.ref, exc)
        out[role.attributes["Arn"]] = tuple(statements)
    return out


class AccessControl:
    """Identity-policy checks for the stack's roles, with cached decisions."""

    def __init__(self, roles: Mapping[str, tuple[Statement, ...]],
                 functions: Mapping[str, str] | None = None,
                 secret_arns: Mapping[str, str] | None = None) -> None:
        self._roles = dict(roles)
        self.secret_arns = dict(secret_arns or {})  # Secrets Manager name -> the stack's ARN
        self._cache: dict[tuple[str, str, str], PolicyDecision] = {}
        self._callers: dict[str, Caller] = {}
        self._secrets: dict[str, str] = dict(ADMIN_KEYS)
        for function_name, role_arn in (functions or {}).items():
            key = function_access_key(function_name)
            self._callers[key] = Caller(role_arn, function_name)
            self._secrets[key] = function_secret_key(function_name)

    @classmethod
    def from_stack(cls, stack: Stack) -> AccessControl:
        """Roles and policies of the stack, and one credential per Lambda function."""
        functions = {str(f.ref): str(f.properties["Role"])
                     for f in stack.of_type("AWS::Lambda::Function") if f.properties.get("Role")}
        secrets = {r.ref.split(":secret:", 1)[1].rsplit("-", 1)[0]: r.ref
                   for r in stack.of_type("AWS::SecretsManager::Secret") if ":secret:" in r.ref}
        return cls(role_statements(stack), functions, secrets)

    def update(self, other: AccessControl) -> None:
        """Check with *other*'s roles, functions and secrets from now on (a running twin's
        re-synthesized stack): every door holding this object sees them at its next request.
        The roles are swapped before the cache (and :meth:`decide` reads the cache first), so a
        decision made meanwhile never lands in the new cache from the old roles."""
        self._roles, self._callers, self._secrets = other._roles, other._callers, other._secrets
        self._cache = {}
        self.secret_arns.update(other.secret_arns)  # the dict the HTTP middleware holds

    def caller(self, access_key: str | None) -> Caller | None:
        """The function role behind an access key; None for an administrator."""
        return self._callers.get(access_key) if access_key else None

    def secret_key(self, access_key: str) -> str | None:
        """The secret of a key the twin knows (for SigV4 verification); None if unknown."""
        return self._secrets.get(access_key)

    def decide(self, role_arn: str, action: str, resource: str) -> PolicyDecision:
        """The decision for a role (cached; a role the stack does not define allows nothing)."""
        key = (role_arn, action, resource)
        cache = self._cache  # before the roles: see update()
        decision = cache.get(key)
        if decision is None:
            statements = self._roles.get(role_arn, ())
            decision = evaluate(statements, action, resource, role_context(role_arn))
            cache[key] = decision
        return decision

    def check(self, caller: Caller, action: str, resource: str) -> Denial | None:
        """None when allowed, else what AWS's AccessDenied message needs."""
        decision = self.decide(caller.role_arn, action, resource)
        if decision is PolicyDecision.ALLOW:
            return None
        return Denial(caller.principal, action, resource,
                      explicit=decision is PolicyDecision.EXPLICIT_DENY)

    def check_integration(self, credentials_arn: str, action: str, resource: str) -> Denial | None:
        """An API Gateway integration acting with its credentials role."""
        return self.check(Caller(credentials_arn, INTEGRATION_SESSION), action, resource)
