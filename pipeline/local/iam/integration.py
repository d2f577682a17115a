"""IAM for API Gateway AWS integrations: the credentials role must allow the action.

API Gateway assumes the integration's ``CredentialsArn`` role and calls the service with it; the
service then answers AccessDenied like for any caller, and API Gateway reports a failed
integration to the client (``{"message": "Internal server error", ...}``; a failed ``$connect``
refuses the connection)
(https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-integration-requests.html).
"""

from __future__ import annotations

import orjson

from pipeline.aws.errors import ACCESS_DENIED, AwsResponse
from pipeline.local.iam.access import AccessControl
from pipeline.local.iam.errors import denied_message
from pipeline.local.iam.requests import checks_for, denied_body


def integration_denied(access: AccessControl, service: str, action: str, body: bytes,
                       credentials_arn: str) -> AwsResponse | None:
    """None when the role allows ``<service>:<action>`` on every resource the body names."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the service itself answers SerializationException
    if not isinstance(request, dict):
        return None
    for iam_action, resource in checks_for(service, action, request, access.secret_arns):
        denial = access.check_integration(credentials_arn, iam_action, resource)
        if denial is not None:
            status, _, payload = denied_body(service, "json", denied_message(denial))
            return AwsResponse(status, payload, ACCESS_DENIED)
    return None
