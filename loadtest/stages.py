"""Split a round trip into stages with the ``timing`` fields the echo consumer returns.

The reply carries epoch milliseconds (docs/contracts.md, "Replies"): ``gatewayMs`` (API Gateway's
``requestTimeEpoch``), ``streamMs`` (Kinesis ``approximateArrivalTimestamp``), ``consumerMs``
(consumer start) and ``replyMs`` (just before ``postToConnection``). Stages that subtract a
client clock from a server clock are only meaningful when both run on the same host (the twin);
against a deployed stage only the server-to-server stages are comparable.
"""

from __future__ import annotations

from collections.abc import Mapping

# stage name -> (start field, end field); "client" fields are the client's own clock.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("clientToGateway", "clientSendMs", "gatewayMs"),
    ("gatewayToStream", "gatewayMs", "streamMs"),
    ("streamToConsumer", "streamMs", "consumerMs"),
    ("consumer", "consumerMs", "replyMs"),
    ("replyToClient", "replyMs", "clientRecvMs"),
)
CROSS_CLOCK_STAGES = frozenset({"clientToGateway", "replyToClient"})


def stage_names(same_clock: bool) -> list[str]:
    """The stages worth reporting: all on one host, only server-to-server ones otherwise."""
    return [name for name, _, _ in STAGES if same_clock or name not in CROSS_CLOCK_STAGES]


def split(
    timing: Mapping[str, object], client_send_ms: float, client_recv_ms: float, same_clock: bool
) -> dict[str, float]:
    """Duration of each stage in ms; stages whose fields are missing or not numbers are omitted.

    Durations can come out negative: the server clocks have millisecond resolution and may be
    skewed against the client's; the caller decides how to count those.
    """
    points: dict[str, float] = {"clientSendMs": client_send_ms, "clientRecvMs": client_recv_ms}
    for key in ("gatewayMs", "streamMs", "consumerMs", "replyMs"):
        value = timing.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            points[key] = float(value)
    wanted = set(stage_names(same_clock))
    out: dict[str, float] = {}
    for name, start, end in STAGES:
        if name in wanted and start in points and end in points:
            out[name] = points[end] - points[start]
    return out
