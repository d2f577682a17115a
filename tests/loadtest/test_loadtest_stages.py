from __future__ import annotations

from loadtest.stages import split, stage_names

TIMING = {"gatewayMs": 1002, "streamMs": 1010, "consumerMs": 1080, "replyMs": 1083}


def test_same_host_splits_the_whole_round_trip() -> None:
    stages = split(TIMING, client_send_ms=1000.5, client_recv_ms=1090.0, same_clock=True)
    assert stages == {
        "clientToGateway": 1.5, "gatewayToStream": 8, "streamToConsumer": 70,
        "consumer": 3, "replyToClient": 7,
    }  # fmt: skip
    assert sum(stages.values()) == 1090.0 - 1000.5


def test_remote_target_keeps_only_server_to_server_stages() -> None:
    stages = split(TIMING, client_send_ms=5.0, client_recv_ms=9.0, same_clock=False)
    assert set(stages) == {"gatewayToStream", "streamToConsumer", "consumer"}
    assert stage_names(False) == ["gatewayToStream", "streamToConsumer", "consumer"]


def test_missing_or_non_numeric_fields_drop_only_their_stages() -> None:
    timing = {"gatewayMs": 1002, "streamMs": "soon", "consumerMs": True, "replyMs": 1083}
    stages = split(timing, 1000.0, 1090.0, same_clock=True)
    assert stages == {"clientToGateway": 2.0, "replyToClient": 7.0}
