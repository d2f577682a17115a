"""IAM identity-policy evaluation, pure logic (no I/O).

Follows the documented evaluation logic for one account and identity-based policies only
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit ``Deny`` wins, then an ``Allow``, otherwise the request is implicitly denied.

- ``Action``/``NotAction`` match case-insensitively, ``Resource``/``NotResource``
  case-sensitively; both accept ``*`` and ``?``. In an ARN a wildcard never spans the first five
  ``:`` separators (partition, service, region, account), as IAM matches ARN segment by segment
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html).
- Conditions: the String*, Arn*, Bool and Null operators, with ``...IfExists`` and the
  ``ForAnyValue:``/``ForAllValues:`` qualifiers. The twin knows only a few global keys
  (:func:`pipeline.local.iam.access.role_context`); any other key is absent, and an absent key's
  values *do not match*: a positive operator is false (an Allow guarded by it does not apply),
  a negated one (``StringNotEquals``...) true, ``...IfExists`` true, as the condition operator
  reference documents
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
  An unknown operator never matches. Policy variables (``${aws:username}``) are not expanded.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.local.iam.errors import PolicyError

log = logging.getLogger(__name__)

ContextValue = str | bool | Sequence[str]
Context = Mapping[str, ContextValue]


class PolicyDecision(enum.Enum):
    """The outcome of an evaluation."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"

    @property
    def allowed(self) -> bool:
        return self is PolicyDecision.ALLOW


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = ("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """``*`` (any run) and ``?`` (one character) matching over the whole value."""
    if pattern == "*":
        return True
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """``kinesis:Put*`` matches ``kinesis:PutRecord`` (case-insensitive)."""
    return wildcard_match(pattern, action, ignore_case=True)


def resource_matches(pattern: str, resource: str) -> bool:
    """ARN pattern matching, segment by segment for the first five ARN fields."""
    if pattern == "*":
        return True
    if not pattern.startswith("arn:") or not resource.startswith("arn:"):
        return wildcard_match(pattern, resource)
    p_parts, r_parts = pattern.split(":", 5), resource.split(":", 5)
    if len(p_parts) != len(r_parts):
        return False
    return all(wildcard_match(p, r) for p, r in zip(p_parts, r_parts, strict=True))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


# --- conditions -------------------------------------------------------------------------------

def _string_equals(pattern: str, value: str) -> bool:
    return pattern == value


def _string_equals_ic(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


def _string_like(pattern: str, value: str) -> bool:
    return wildcard_match(pattern, value)


def _arn_like(pattern: str, value: str) -> bool:
    return resource_matches(pattern, value)


def _bool(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


# operator -> (comparison, negated)
_OPERATORS = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ic, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ic, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
    "Bool": (_bool, False),
}


def _context_values(context: Context, key: str) -> list[str] | None:
    # Condition keys are case-insensitive (their values are not).
    for name, value in context.items():
        if name.lower() == key.lower():
            if isinstance(value, bool):
                return ["true" if value else "false"]
            return _as_list(value)
    return None


def _condition_matches(operator: str, key: str, expected: list[str], context: Context) -> bool:
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    actual = _context_values(context, key)
    if op == "Null":
        want_absent = expected[0].lower() == "true" if expected else True
        return (actual is None) == want_absent
    spec = _OPERATORS.get(op)
    if spec is None:
        return False
    compare, negated = spec
    if actual is None:
        return if_exists or negated

    def one(value: str) -> bool:
        hit = any(compare(p, value) for p in expected)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in actual)
    return any(one(v) for v in actual)  # single-valued keys and ForAnyValue


def conditions_match(conditions: Mapping[str, Any], context: Context) -> bool:
    """Every operator block and every key in it must match (AND); values within a key are OR."""
    for operator, block in conditions.items():
        if not isinstance(block, Mapping):
            return False
        for key, expected in block.items():
            if not _condition_matches(str(operator), str(key), _as_list(expected), context):
                return False
    return True


# --- statements and policies ------------------------------------------------------------------

@dataclass(frozen=True)
class Statement:
    """One policy statement (Principal is ignored: identity policies only)."""

    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_resources: tuple[str, ...]
    conditions: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: Any) -> Statement:
        if not isinstance(raw, Mapping):
            raise PolicyError(f"a statement must be an object, got {type(raw).__name__}")
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"Effect must be Allow or Deny, got {effect!r}")
        if ("Action" in raw) == ("NotAction" in raw):
            raise PolicyError("a statement needs exactly one of Action and NotAction")
        if ("Resource" in raw) == ("NotResource" in raw):
            raise PolicyError("a statement needs exactly one of Resource and NotResource")
        condition = raw.get("Condition") or {}
        if not isinstance(condition, Mapping):
            raise PolicyError("Condition must be an object")
        return cls(
            effect=str(effect),
            actions=tuple(_as_list(raw.get("Action"))),
            not_actions=tuple(_as_list(raw.get("NotAction"))),
            resources=tuple(_as_list(raw.get("Resource"))),
            not_resources=tuple(_as_list(raw.get("NotResource"))),
            conditions=condition,
        )

    def applies(self, action: str, resource: str, context: Context) -> bool:
        """Whether this statement covers the request (its Effect then decides)."""
        if self.actions:
            if not any(action_matches(p, action) for p in self.actions):
                return False
        elif any(action_matches(p, action) for p in self.not_actions):
            return False
        if self.resources:
            if not any(resource_matches(p, resource) for p in self.resources):
                return False
        elif any(resource_matches(p, resource) for p in self.not_resources):
            return False
        return not self.conditions or conditions_match(self.conditions, context)


def parse_policy(document: Any) -> tuple[Statement, ...]:
    """The statements of a policy document (``Statement`` may be one object or a list)."""
    if not isinstance(document, Mapping):
        raise PolicyError("a policy document must be an object")
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    return tuple(Statement.parse(s) for s in items)


def evaluate(
    statements: Sequence[Statement], action: str, resource: str, context: Context | None = None
) -> PolicyDecision:
    """Explicit Deny, else Allow, else implicit deny."""
    ctx: Context = context or {}
    allowed = False
    for statement in statements:
        if statement.applies(action, resource, ctx):
            if statement.effect == "Deny":
                return PolicyDecision.EXPLICIT_DENY
            allowed = True
    return PolicyDecision.ALLOW if allowed else PolicyDecision.IMPLICIT_DENY
