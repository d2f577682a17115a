"""The @connections client against a real local HTTP server that answers like AWS."""

from __future__ import annotations

import json

from connections_stub import AtConnections

from pipeline.runtime import ConnectionsClient, Outcome, RetryPolicy


def test_a_post_is_delivered_with_its_exact_bytes(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    result = connections.post("abc=", b'{"x":1}')
    assert (result.outcome, result.attempts, result.status) == (Outcome.DELIVERED, 1, 200)
    assert atconn.posts == [("abc=", b'{"x":1}')]


def test_410_is_gone_at_once(atconn: AtConnections, connections: ConnectionsClient) -> None:
    atconn.gone.add("old")
    result = connections.post("old", b"{}")
    assert (result.outcome, result.status, result.error_code) == (Outcome.GONE, 410,
                                                                  "GoneException")
    assert atconn.attempts["old"] == 1


def test_429_is_retried_then_delivered(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    atconn.throttle["busy"] = 2
    result = connections.post("busy", b"{}")
    assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 3)
    assert atconn.attempts["busy"] == 3 and atconn.delivered_to() == ["busy"]


def test_throttling_and_5xx_give_up_after_the_bounded_attempts(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    atconn.throttle["busy"] = 100
    atconn.broken.add("down")
    busy, down = connections.post("busy", b"{}"), connections.post("down", b"{}")
    assert (busy.outcome, busy.status, busy.error_code) == (Outcome.FAILED, 429,
                                                            "LimitExceededException")
    assert (down.outcome, down.status) == (Outcome.FAILED, 500)
    # exactly max_attempts each: botocore's own retries are off, so nothing retries twice
    assert atconn.attempts["busy"] == atconn.attempts["down"] == connections.retry.max_attempts


def test_413_is_reported_not_retried(atconn: AtConnections, connections: ConnectionsClient) -> None:
    result = connections.post("x", b"a" * (128 * 1024 + 1))
    assert (result.outcome, result.status, result.attempts) == (Outcome.TOO_LARGE, 413, 1)
    assert result.error_code == "PayloadTooLargeException"


def test_post_many_is_concurrent_deduplicated_and_reports_each_connection(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    atconn.delay_s = 0.02
    atconn.gone.add("c3")
    ids = [f"c{i}" for i in range(40)] + ["c1", "c2"]
    results = connections.post_many(ids, json.dumps({"m": 1}).encode())
    assert [r.connection_id for r in results] == [f"c{i}" for i in range(40)]
    assert [r.connection_id for r in results if r.outcome is Outcome.GONE] == ["c3"]
    assert sorted(atconn.delivered_to()) == sorted(f"c{i}" for i in range(40) if i != 3)
    assert atconn.max_in_flight > 4  # not a sequential loop


def test_unreachable_endpoint_fails_after_bounded_attempts(aws_env: None) -> None:
    client = ConnectionsClient("http://127.0.0.1:9/dev", retry=RetryPolicy(2, 0.001, 0.001))
    result = client.post("x", b"{}")
    assert (result.outcome, result.attempts, result.status) == (Outcome.FAILED, 2, 0)


def test_full_jitter_backoff_stays_under_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=0.05, cap_s=0.4)
    delays = [policy.delay(n) for n in range(10) for _ in range(50)]
    assert all(0.0 <= d <= 0.4 for d in delays)
    assert max(policy.delay(0) for _ in range(200)) <= 0.05
