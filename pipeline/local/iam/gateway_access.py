"""IAM at the gateway: SigV4-signed ``$connect`` (``AWS_IAM``) and @connections authorization.

Sans-I/O: the gateway passes method, host, path, raw query and headers; the answers are
``None`` (go on) or a :class:`Refusal` carrying AWS's status, error type and message.

- ``$connect`` with ``AuthorizationType: AWS_IAM``: the upgrade request's presigned query
  (``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``,
  ``X-Amz-SignedHeaders``, ``X-Amz-Signature``, service ``execute-api``) is verified by
  recomputing the signature with botocore's ``SigV4QueryAuth`` for the key's secret; then the
  caller needs ``execute-api:Invoke`` on ``arn:aws:execute-api:<region>:<account>:<api>/<stage>/$connect``
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html).
- @connections: a function role needs ``execute-api:ManageConnections`` on
  ``.../<stage>/<METHOD>/@connections/<connectionId>``; unsigned callers and administrators'
  keys are allowed
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.iam.access import AccessControl, Caller
from pipeline.local.iam.errors import denied_message
from pipeline.local.iam.requests import credential_of

_SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_REQUIRED = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
             "X-Amz-SignedHeaders", "X-Amz-Signature")
_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
             "Check your AWS Secret Access Key and signing method. Consult the service "
             "documentation for details.")


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer refusing a request."""

    status: int
    error_type: str
    message: str


def _params(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for pair in raw_query.split("&") if raw_query else ():
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    return pairs


class GatewayAccess:
    """The gateway's IAM checks over the twin's :class:`AccessControl`."""

    def __init__(self, access: AccessControl, api_id: str, stage: str) -> None:
        self._access = access
        self._api_id = api_id
        self._stage = stage

    def execute_api_arn(self, tail: str) -> str:
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self._api_id}/{self._stage}/{tail}"

    # --- $connect with AWS_IAM ------------------------------------------------------------

    def verify_connect(self, *, method: str, host: str, path: str, raw_query: str,
                       headers: Mapping[str, str], now: datetime | None = None
                       ) -> Refusal | None:
        """Verify the presigned upgrade request; None when the signature and Invoke hold."""
        pairs = _params(raw_query)
        params = {k: unquote(v) for k, v in pairs}
        if not any(k in params for k in _REQUIRED):
            return Refusal(403, "MissingAuthenticationTokenException",
                           "Missing Authentication Token")
        missing = [k for k in _REQUIRED if not params.get(k)]
        if missing:
            return Refusal(403, "IncompleteSignatureException",
                           f"Authorization query parameters are missing: {', '.join(missing)}")
        if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            return Refusal(403, "IncompleteSignatureException",
                           "Unsupported algorithm: only AWS4-HMAC-SHA256 is accepted")
        credential = credential_of({}, "X-Amz-Credential=" + pairs_value(pairs, "X-Amz-Credential"))
        if credential is None:
            return Refusal(403, "IncompleteSignatureException", "Malformed X-Amz-Credential")
        if credential.service != "execute-api" or credential.region != REGION:
            return Refusal(403, "InvalidSignatureException",
                           f"Credential should be scoped to a valid region and to the correct "
                           f"service: '{REGION}', 'execute-api'")
        secret = self._access.secret_key(credential.access_key)
        if secret is None:
            return Refusal(403, "UnrecognizedClientException",
                           "The security token included in the request is invalid.")
        expired = self._expired(params["X-Amz-Date"], params["X-Amz-Expires"], now)
        if expired is not None:
            return expired
        expected = self._signature(method, host, path, pairs, headers, params, credential.access_key,
                                   secret)
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return Refusal(403, "InvalidSignatureException", _MISMATCH)
        caller = self._access.caller(credential.access_key)
        if caller is not None:
            return self._denied(caller, "execute-api:Invoke", self.execute_api_arn("$connect"))
        return None

    @staticmethod
    def _expired(date: str, expires: str, now: datetime | None) -> Refusal | None:
        try:
            signed_at = datetime.strptime(date, _SIGV4_TIMESTAMP).replace(tzinfo=UTC)
            lifetime = int(expires)
        except ValueError:
            return Refusal(403, "IncompleteSignatureException", "Malformed X-Amz-Date or Expires")
        current = now or datetime.now(UTC)
        if not 1 <= lifetime <= 604800:
            return Refusal(403, "IncompleteSignatureException",
                           "X-Amz-Expires must be between 1 and 604800 seconds")
        if current > signed_at + timedelta(seconds=lifetime):
            return Refusal(403, "InvalidSignatureException",
                           f"Signature expired: {date} is now earlier than "
                           f"{(current - timedelta(seconds=lifetime)).strftime(_SIGV4_TIMESTAMP)}")
        if signed_at > current + timedelta(minutes=15):
            return Refusal(403, "InvalidSignatureException",
                           f"Signature not yet current: {date} is still later than "
                           f"{(current + timedelta(minutes=15)).strftime(_SIGV4_TIMESTAMP)}")
        return None

    @staticmethod
    def _signature(method: str, host: str, path: str, pairs: list[tuple[str, str]],
                   headers: Mapping[str, str], params: Mapping[str, str], access_key: str,
                   secret: str) -> str:
        unsigned = "&".join(f"{k}={v}" for k, v in pairs if k != "X-Amz-Signature")
        lowered = {k.lower(): v for k, v in headers.items()}
        signed = [h for h in params["X-Amz-SignedHeaders"].split(";") if h]
        values = {h: lowered.get(h, "") for h in signed}
        if "host" in signed:
            values["host"] = lowered.get("host", host)
        # (botocore's HTTPHeaders appends on assignment: build the headers in one go)
        request = AWSRequest(method=method, url=f"https://{host}{path}?{unsigned}",
                             headers=values)
        request.context["timestamp"] = params["X-Amz-Date"]
        token = params.get("X-Amz-Security-Token")
        signer = SigV4QueryAuth(Credentials(access_key, secret, token), "execute-api", REGION)
        canonical = signer.canonical_request(request)
        return str(signer.signature(signer.string_to_sign(request, canonical), request))

    # --- @connections ---------------------------------------------------------------------

    def manage_connections(self, *, method: str, connection_id: str,
                           headers: Mapping[str, str]) -> Refusal | None:
        """None when the caller may manage the connection (unsigned and admin keys may)."""
        credential = credential_of(headers)
        caller = self._access.caller(credential.access_key) if credential else None
        if caller is None:
            return None
        resource = self.execute_api_arn(f"{method}/@connections/{connection_id}")
        return self._denied(caller, "execute-api:ManageConnections", resource)

    def _denied(self, caller: Caller, action: str, resource: str) -> Refusal | None:
        denial = self._access.check(caller, action, resource)
        if denial is None:
            return None
        # API Gateway answers an IAM refusal with 403; botocore maps it to ForbiddenException.
        return Refusal(403, "ForbiddenException", denied_message(denial))


def pairs_value(pairs: list[tuple[str, str]], key: str) -> str:
    """The raw (still percent-encoded) value of a query parameter, decoded."""
    for k, v in pairs:
        if k == key:
            return unquote(v)
    return ""
