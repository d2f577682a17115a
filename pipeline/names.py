"""The product's own names, defined once: the stack, the twin's default addresses, the route keys
the stack reserves, the variables and tags its parts find each other by.

Shipped in the Lambda layer beside ``pipeline/runtime`` (no imports, no I/O). AWS's own facts
(quotas, codes, event shapes) live in :mod:`pipeline.aws`.
"""

from __future__ import annotations

STACK_PREFIX = "WebSocketPipeline"  # the stack's name before ``-<stage>``, the dashboard's too
DEFAULT_STAGE = "dev"


def stack_name(stage: str) -> str:
    """``WebSocketPipeline-<stage>``: the stack (and its dashboard) of a stage."""
    return f"{STACK_PREFIX}-{stage}"


# The local twin's defaults (``make local``; its flags change them).
TWIN_HOST = "127.0.0.1"
TWIN_PORT = 8080  # WebSocket API, @connections and the demo page
TWIN_AWS_PORT = 4566  # Kinesis, DynamoDB, SQS, ... (boto3 ``endpoint_url``)
TWIN_AWS_ENDPOINT = f"http://{TWIN_HOST}:{TWIN_AWS_PORT}"


def twin_ws_url(stage: str = DEFAULT_STAGE, port: int = TWIN_PORT) -> str:
    """``ws://127.0.0.1:8080/dev``: the twin's WebSocket API for ``stage``."""
    return f"ws://{TWIN_HOST}:{port}/{stage}"


def twin_connections_url(stage: str = DEFAULT_STAGE, port: int = TWIN_PORT,
                         host: str = TWIN_HOST) -> str:
    """``http://127.0.0.1:8080/dev``: the twin's @connections endpoint for ``stage``."""
    return f"http://{host}:{port}/{stage}"


# Route keys the stack defines itself: a consumer may not route them (the registry refuses).
PING_ROUTE = "ping"  # MOCK integration: API Gateway answers {"action":"pong"}, no stream record
WHOAMI_ROUTE = "whoami"  # MOCK integration: the connection's own id from $context
CONNECT_ROUTE = "$connect"  # writes the roster (or the authorizer), never the stream
RESERVED_ROUTES = frozenset({CONNECT_ROUTE, PING_ROUTE, WHOAMI_ROUTE})
# The server route key of the fan-out tier's pages (records a consumer writes, not a client).
FANOUT_ROUTE = "fanout"

# A consumer function's environment: its @connections endpoint (the stage's callback URL).
CONNECTIONS_ENDPOINT_VARIABLE = "CONNECTIONS_ENDPOINT_URL"
# The tag on each consumer's function naming its consumer (``consumers/<name>/``): how redrive
# finds the function in a deployed stack or the twin's template.
CONSUMER_TAG = "pipeline:consumer"
# CloudWatch metrics namespace of the consumers' metrics (EMF) and alarms.
METRICS_NAMESPACE = "WebSocketPipeline"
