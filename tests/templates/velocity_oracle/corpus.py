"""Hostile ``$input`` bodies and ``$context`` values for the differential test.

Every integration template is rendered with every body under the base context and with a few
bodies under every context variant, so request and response templates see client frames,
Kinesis results and AWS error bodies, well-formed or not.
"""

from __future__ import annotations

from typing import Any

from test_stream_put_record import HOSTILE_FRAMES

BASE_CONTEXT: dict[str, Any] = {
    "apiId": "a1b2c3d4e5",
    "routeKey": "$default",
    "eventType": "MESSAGE",
    "connectionId": "L0SM9cOFvHcCIhw=",
    "requestId": "Kd3fXFuRoAMFT1Q=",
    "extendedRequestId": "Kd3fXFuRoAMFT1Q=",
    "messageId": "Kd3fYcIboAMCJbg=",
    "messageDirection": "IN",
    "requestTime": "30/Nov/2026:05:33:17 +0000",
    "requestTimeEpoch": 1700000000123,
    "connectedAt": 1700000000000,
    "stage": "dev",
    "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
    "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
}

# Beyond test_stream_put_record's frames: VTL syntax, JSON escapes, odd code points, JSON scalars.
MORE_FRAMES = [
    '{"action":"send","room":"r1","text":"hi \\"there\\" \\\\ \\u0000 \\ud83d\\ude00"}',
    '{"action":"echo","data":"\\ud800"}',
    "#if(true)yes#else no#end ## not a comment #* nor a block *#",
    "$!{context.requestId} \\$context.stage \\\\$util #foreach($i in [1..3])$i#end",
    "#set($body = 'overwritten')#stop",
    "$ # $$ ## #[[literal]]# @@STREAM_NAME@@",
    "tab\there\r\ncrlf\rcr",
    "\ufeffBOM first",
    "\u0085 NEL \u00a0 NBSP \u200b ZWSP \ufffe \uffff",
    "\U0010ffff last code point, \U0001f468\u200d\U0001f469\u200d\U0001f467 family",
    "'",
    '\\"',
    "''''\"\"\"\"\\\\\\\\////",
    ("mixed 'quotes' \"and\" \\backslashes/ é😀 " * 2000),
    "{}",
    "[]",
    "null",
    "123",
    "true",
    '{"ShardId":"shardId-000000000001","SequenceNumber":"49546986683135544286507457936321625675700192471156785154","EncryptionType":"NONE"}',
    '{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}',
    '{"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException:http://internal.amazon.com/coral/com.amazon.coral.validate/","message":"Stream ws-stream not found"}',
    '{"__type":"Bad\\"Quote\'</script>\\\\","message":"x"}',
    '{"__type":""}',
    '{"__type":"a#b#c:d:e"}',
    '{"__type":"Ünïcødé😀Exception"}',
    '{"ShardId":"shard\\"Id\'</script>","SequenceNumber":"1\\u2028\\u0001"}',
    '{"ShardId":"","SequenceNumber":""}',
    '{"message":"no type"}',
]

FRAMES: list[str] = [*HOSTILE_FRAMES, *MORE_FRAMES]


def _with(**changes: Any) -> dict[str, Any]:
    context = {**BASE_CONTEXT, **changes}
    return {k: v for k, v in context.items() if v is not None}


CONTEXTS: dict[str, dict[str, Any]] = {
    "base": BASE_CONTEXT,
    "connect": _with(routeKey="$connect", eventType="CONNECT", messageId=None),
    "disconnect-1001": _with(routeKey="$disconnect", eventType="DISCONNECT", messageId=None,
                             disconnectStatusCode=1001),
    "disconnect-no-code": _with(routeKey="$disconnect", eventType="DISCONNECT", messageId=None),
    "custom-route": _with(routeKey="send"),
    "principal-quotes": _with(authorizer={"principalId": "user\"'1\\</script>"}),
    "principal-unicode": _with(authorizer={"principalId": "ü😀\u2028\x01\x7f"}),
    "principal-vtl": _with(authorizer={"principalId": "$context.connectionId #set($x = 1) ${q}"}),
    "principal-empty": _with(authorizer={"principalId": ""}),
    "principal-lone-surrogate": _with(authorizer={"principalId": "\udc00x"}),
    "connected-at-string": _with(connectedAt="1700000000999"),
    "ipv6-no-domain": _with(identity={"sourceIp": "2001:db8::1"}, domainName=None),
    "no-identity": _with(identity=None, messageId=None),
}

# The bodies every context variant is rendered with (a frame, a Kinesis result, an error body).
CONTEXT_BODIES = [
    'it\'s "quoted" \\ </script> 😀',
    '{"ShardId":"shardId-000000000000","SequenceNumber":"1","EncryptionType":"NONE"}',
    '{"__type":"InternalFailure","message":"boom"}',
]

# Placeholder values, as the stack substitutes them (pipeline/infrastructure/websocket_ingress.py).
PLACEHOLDERS = {
    "STREAM_NAME": "ws-stream",
    "TABLE_NAME": "ws-roster",
    "CONNECTION_TTL_SECONDS": "10800",
    "RETRYABLE_BY_STATUS": "false",
}

# The $util and $input bindings on their own, over every frame: what a template added later may
# call. Not here, because stock Velocity 1.7 and the twin differ on purpose or by design (see
# docs/fidelity.md): a non-quiet null reference ($input.path('$.missing') without "!"; airspeed-ext
# renders "" as API Gateway is reported to, Velocity 1.7 the reference's text), and String.length()
# and indices (UTF-16 units in Java, code points in Python).
BINDINGS = [
    "$util.escapeJavaScript($input.body)",
    "$util.base64Encode($input.body)",
    "$util.urlEncode($input.body)|$util.urlDecode($util.urlEncode($input.body))",
    "$input.json('$')",
    "$!input.path('$')|$!input.path('$.action')|$!input.path('$.__type')",
    "$!util.parseJson($input.body)",
    "$!input.path('$').size()|$!input.path('$').keySet()|$!input.path('$').isEmpty()"
    "|$!input.path('$').containsKey('action')",
]
