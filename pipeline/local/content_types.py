"""What an AWS JSON-protocol service does with a request's ``Content-Type``, with no I/O.

Kinesis reads ``application/x-amz-json-1.1`` (JSON) and ``application/x-amz-cbor-1.1`` (CBOR, the
Java SDK's default) and nothing else: its API reference requires the JSON 1.1 header on every
request (https://docs.aws.amazon.com/kinesis/latest/APIReference/Welcome.html, "Making API
Requests", ``Content-Type: application/x-amz-json-1.1``), AWS's Kinesis proxy tutorial maps it as a
static integration header for that reason
(https://docs.aws.amazon.com/apigateway/latest/developerguide/integrating-api-with-aws-services-kinesis.html),
and a request with another type (e.g. ``application/octet-stream``) is answered
``<UnknownOperationException/>``, not executed
(https://github.com/disneystreaming/smithy4s/issues/167). The twin answers a missing or other type
404 ``UnknownOperationException`` (the status AWS's common errors give an unknown operation). The
twin's Kinesis reads both encodings (``pipeline.local.kinesis.wire``): a CBOR type with a CBOR
body works, and JSON text sent with the CBOR type is a 400 ``SerializationException`` (JSON text
is no CBOR map; docs/fidelity.md "Unverified on AWS").
"""

from __future__ import annotations

from pipeline.aws.errors import AwsResponse

KINESIS_JSON = "application/x-amz-json-1.1"
KINESIS_CBOR = "application/x-amz-cbor-1.1"
# What API Gateway sends an AWS integration that sets no Content-Type request parameter: not
# documented for WebSocket APIs; REST APIs pass the method request's type, JSON here.
GATEWAY_DEFAULT = "application/json"


def media_type(content_type: str | None) -> str:
    """``type/subtype`` of a Content-Type header, lower case, without parameters ("" if none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def kinesis_refusal(content_type: str | None) -> AwsResponse | None:
    """None when Kinesis reads a request sent with *content_type* (JSON 1.1 or CBOR 1.1: the
    body is then decoded as that type), else its answer."""
    kind = media_type(content_type)
    if kind in (KINESIS_JSON, KINESIS_CBOR):
        return None
    return AwsResponse(404, b"<UnknownOperationException/>\n", "UnknownOperationException")
