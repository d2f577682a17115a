"""Two-way routes, with no I/O: integration response selection and response templates.

API Gateway answers a frame on a route that has a route response with what the integration
response makes of the integration's result; a one-way route sends nothing back on success
(whatever integration responses exist) and the "Internal server error" frame on failure.
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-integration-responses.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html

Selection, for a non-proxy integration: the integration's HTTP status (rule ``status``; rule
``lambda-like``: the body's ``errorMessage``, "" when absent, see ``GatewayRules``) is matched
against every ``/regex/`` key (the whole value must match); if none matches, the ``$default`` response is
used; with neither, the request fails. The response's template selection expression is evaluated
(a constant such as ``\\$default``, or ``${integration.response.statuscode}``) and looked up in
its ``ResponseTemplates``, falling back to the ``$default`` template; with no template at all the
integration's body goes to the client unchanged. The template sees ``$input`` = the
integration's response body, and the request's ``$context`` and ``$stageVariables`` only, never
the client's frame (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-mapping-template-reference.html).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson

from pipeline.local import vtl
from pipeline.local.gateway.model import IntegrationResponse

_STATUS_EXPRESSIONS = frozenset({
    "${integration.response.statuscode}", "$integration.response.statuscode"})


@lru_cache(maxsize=64)
def _key_regex(key: str) -> re.Pattern[str] | None:
    try:
        return re.compile(key[1:-1])
    except re.error:
        return None  # a key that is not a valid regex never matches


def selection_value(rule: str, status: int, body: bytes) -> str:
    """What the ``/regex/`` keys are matched against under *rule* (``GatewayRules``)."""
    if rule == "status":
        return str(status)
    # Lambda: the selection expression is fixed to ${integration.response.body.errorMessage}.
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-integration-responses.html
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    message = doc.get("errorMessage") if isinstance(doc, dict) else None
    return message if isinstance(message, str) else ""


def select_response(responses: Sequence[IntegrationResponse], status: int, *,
                    rule: str = "status", body: bytes = b"") -> IntegrationResponse | None:
    """The integration response for an integration result: first matching regex, else $default."""
    code = selection_value(rule, status, body)
    default = None
    for response in responses:
        if response.key == "$default":
            default = response
            continue
        pattern = _key_regex(response.key)
        if pattern is not None and pattern.fullmatch(code):
            return response
    return default


def select_template(response: IntegrationResponse, status: int) -> str | None:
    """The response template the selection expression picks (None: pass the body through)."""
    expression = (response.template_selection_expression or "$default").replace("\\$", "$")
    value = str(status) if expression in _STATUS_EXPRESSIONS else expression
    template = response.templates.get(value)
    if template is None:
        template = response.templates.get("$default")
    return template


def render_response(responses: Sequence[IntegrationResponse], *, status: int, body: bytes,
                    context: Mapping[str, Any],
                    stage_variables: Mapping[str, str], rule: str = "status") -> str | None:
    """The frame a two-way route sends for an integration result; None when no integration
    response applies (the gateway then sends its error frame).

    Raises :class:`vtl.VtlError` when the template fails.
    """
    response = select_response(responses, status, rule=rule, body=body)
    if response is None:
        return None
    text = body.decode("utf-8", "replace")
    template = select_template(response, status)
    if template is None:
        return text
    return vtl.render(template, body=text, context=context, stage_variables=stage_variables)
