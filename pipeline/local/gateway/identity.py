"""A REQUEST authorizer's identity sources, checked before the authorizer is invoked.

API Gateway verifies "all of the identity-related request parameters are present in the
request, not null, and non-empty. Only when this is true does the authorizer invoke the
authorizer Lambda function. Otherwise, it returns a 401 Unauthorized response without calling
the Lambda function" (CreateAuthorizer, ``identitySource``):
https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-authorizers.html
Pure: no I/O, the server asks :func:`missing_identity_sources` before it invokes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

HEADER = "route.request.header."
QUERY = "route.request.querystring."
STAGE_VARIABLE = "stageVariables."


def identity_sources(value: object) -> tuple[str, ...]:
    """The ``IdentitySource`` of an ``AWS::ApiGatewayV2::Authorizer``: a list, or (as the API
    also accepts) one comma-separated string; absent or empty means none."""
    if isinstance(value, str):
        items: Sequence[object] = value.split(",")
    elif isinstance(value, Sequence):
        items = value
    else:
        return ()
    return tuple(s for s in (str(i).strip() for i in items) if s)


def missing_identity_sources(sources: Sequence[str], *, headers: Mapping[str, str],
                             query: Mapping[str, str],
                             stage_variables: Mapping[str, str]) -> tuple[str, ...]:
    """The *sources* this request lacks (absent or empty); non-empty means 401, no invocation.

    Headers match case-insensitively, query-string parameters and stage variables exactly.
    ``context.*`` sources are always taken as present: the twin's connects have every context
    variable a $connect can name.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = []
    for source in sources:
        if source.startswith(HEADER):
            value = lowered.get(source[len(HEADER):].lower())
        elif source.startswith(QUERY):
            value = query.get(source[len(QUERY):])
        elif source.startswith(STAGE_VARIABLE):
            value = stage_variables.get(source[len(STAGE_VARIABLE):])
        else:
            continue
        if not value:
            missing.append(source)
    return tuple(missing)
