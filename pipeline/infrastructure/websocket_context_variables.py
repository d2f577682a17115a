"""The ``$context`` variables AWS documents for WebSocket APIs, and a checker for templates.

Two lists, because AWS documents two: what a mapping template (request or response template of
a WebSocket integration) may read, and what an access-log format may name. A variable outside
its list may render empty on AWS, and an unsupported access-log variable makes API Gateway
refuse the stage. ``tests/infrastructure/test_infra_context_variables.py`` holds every
``$context.X`` in ``integration_templates/``, in the synthesized stack's inline templates and in
the access-log format against these lists.

Sources (the English pages; entries copied by name only):

- Mapping templates: "WebSocket API mapping template reference for API Gateway",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-mapping-template-reference.html
  (also in the archived awsdocs/amazon-api-gateway-developer-guide repository,
  doc_source/apigateway-websocket-api-mapping-template-reference.md).
- Access logging: "Configure logging for WebSocket APIs in API Gateway",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html

``$context.authorizer.<property>`` is documented on both pages as any key of the Lambda
authorizer's ``context`` map, so every ``authorizer.<name>`` is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MAPPING_TEMPLATE_REFERENCE = (
    "https://docs.aws.amazon.com/apigateway/latest/developerguide/"
    "apigateway-websocket-api-mapping-template-reference.html"
)
ACCESS_LOGGING_REFERENCE = (
    "https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html"
)

MAPPING_TEMPLATE_VARIABLES: frozenset[str] = frozenset({
    "apiId",
    "authorizer.principalId",
    "connectedAt",
    "connectionId",
    "domainName",
    "error.messageString",
    "error.validationErrorString",
    "eventType",
    "extendedRequestId",
    "identity.accountId",
    "identity.apiKey",
    "identity.apiKeyId",
    "identity.caller",
    "identity.cognitoAuthenticationProvider",
    "identity.sourceIp",
    "identity.user",
    "identity.userAgent",
    "identity.userArn",
    "messageId",
    "requestId",
    "requestTime",
    "requestTimeEpoch",
    "routeKey",
    "stage",
    "status",
})

ACCESS_LOG_VARIABLES: frozenset[str] = frozenset({
    "apiId",
    "authorize.error",
    "authorize.latency",
    "authorize.status",
    "authorizer.error",
    "authorizer.integrationLatency",
    "authorizer.integrationStatus",
    "authorizer.latency",
    "authorizer.principalId",
    "authorizer.requestId",
    "authorizer.status",
    "authenticate.error",
    "authenticate.latency",
    "authenticate.status",
    "connectedAt",
    "connectionId",
    "domainName",
    "error.message",
    "error.messageString",
    "error.responseType",
    "error.validationErrorString",
    "eventType",
    "extendedRequestId",
    "identity.accountId",
    "identity.apiKey",
    "identity.apiKeyId",
    "identity.caller",
    "identity.cognitoAuthenticationProvider",
    "identity.cognitoAuthenticationType",
    "identity.cognitoIdentityId",
    "identity.cognitoIdentityPoolId",
    "identity.principalOrgId",
    "identity.sourceIp",
    "identity.user",
    "identity.userAgent",
    "identity.userArn",
    "integration.error",
    "integration.integrationStatus",
    "integration.requestId",
    "integration.status",
    "integrationLatency",
    "messageId",
    "requestId",
    "requestTime",
    "requestTimeEpoch",
    "routeKey",
    "stage",
    "status",
})

# Used by a template although the mapping-template reference does not list it. Each entry says
# why it is safe; docs/contracts.md and docs/fidelity.md ("Unverified on AWS") mark it too.
UNVERIFIED_MAPPING_TEMPLATE_VARIABLES: Mapping[str, str] = {
    "disconnectStatusCode": (
        "not in the WebSocket mapping-template reference; stream_put_record.vtl reads it with "
        "$! and writes 1005 (no status received) when it is empty, so the envelope stays valid "
        "and no consumer depends on it"
    ),
}

# $context.a.b, ${context.a.b}, $!context.a.b, $!{context.a.b}; a trailing "(" would be a method
# call on the value, which no documented variable has, so it is not part of the name.
_CONTEXT_REFERENCE = re.compile(r"\$!?\{?context\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")


def context_variables(text: str) -> set[str]:
    """Every ``$context`` variable named in ``text`` (without the ``$context.`` prefix)."""
    return set(_CONTEXT_REFERENCE.findall(text))


def _documented(name: str, allowed: frozenset[str]) -> bool:
    return name in allowed or (name.startswith("authorizer.") and name.count(".") == 1)


def undocumented_in_template(names: Iterable[str]) -> list[str]:
    """Names a mapping template may not rely on: neither documented nor listed as unverified."""
    return sorted(
        n for n in set(names)
        if not _documented(n, MAPPING_TEMPLATE_VARIABLES)
        and n not in UNVERIFIED_MAPPING_TEMPLATE_VARIABLES
    )


def undocumented_in_access_log(names: Iterable[str]) -> list[str]:
    """Names an access-log format may not use (no "unverified" escape: AWS would refuse them)."""
    return sorted(n for n in set(names) if not _documented(n, ACCESS_LOG_VARIABLES))
