"""The container's share of the @connections quota: a token bucket that bulk posts wait for and
replies take at once, 429 back-off until the deadline, replies never behind a broadcast."""

from __future__ import annotations

import time

from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import envelope
from runtime_kit.retry import FAST_RETRY

from pipeline.runtime import ConnectionsClient, HandlerContext, parse_envelope
from pipeline.runtime.ratelimit import TokenBucket, bucket_from_env

MEMBERS = [f"M{i:03d}aaaaaaaaaa=" for i in range(120)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_bucket_pays_out_its_burst_then_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=2, clock=clock, sleep=clock.sleep)
    assert bucket.acquire() and bucket.acquire()
    assert clock.now == 100.0  # the burst costs no wait
    assert bucket.acquire()
    assert abs(clock.now - 100.1) < 1e-6  # then one token per 1/rate


def test_priority_takes_go_into_debt_that_bulk_posts_pay_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.take()  # replies never wait
    assert clock.now == 100.0
    assert bucket.acquire()
    assert abs(clock.now - 100.5) < 1e-6  # 4 tokens of debt + 1 token: 0.5 s at 10/s


def test_a_token_past_the_deadline_is_refused_without_taking_it() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, burst=1, clock=clock, sleep=clock.sleep)
    assert bucket.acquire()
    assert not bucket.acquire(deadline=clock.now + 0.5)  # the next token comes at +1 s
    assert clock.now == 100.0  # refused at once: no sleep towards an unreachable token
    assert bucket.acquire(deadline=clock.now + 2)


def test_the_share_comes_from_the_environment() -> None:
    bucket = bucket_from_env({"CONNECTIONS_RPS": "250"})
    assert bucket is not None and bucket.rate == 250 and bucket.burst == 62.5
    assert bucket_from_env({}) is None and bucket_from_env({"CONNECTIONS_RPS": "0"}) is None


def _client(atconn: AtConnections, rate: float, burst: float) -> ConnectionsClient:
    return ConnectionsClient(atconn.url, retry=FAST_RETRY, workers=16,
                             limiter=TokenBucket(rate, burst=burst))


def _sender() -> object:
    return parse_envelope(envelope("send", "SENDERaaaaaaaa=", {"action": "send"}),
                          sequence_number="1", partition_key="SENDERaaaaaaaa=",
                          approximate_arrival_timestamp=1700000000.2)


def test_a_fanout_keeps_to_its_rate(atconn: AtConnections) -> None:
    client = _client(atconn, rate=200, burst=10)
    ctx = HandlerContext(connections_client=client)
    try:
        ctx.begin(deadline=time.monotonic() + 30)
        started = time.monotonic()
        report = ctx.fanout(MEMBERS[:100], {"action": "broadcast"})
        assert ctx.invocation.settle() == []
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert report.delivered == 100
    assert elapsed >= (100 - 10) / 200 * 0.9  # at most burst + rate x t posts in t


def test_a_429_storm_slows_the_fanout_but_loses_nothing_and_keeps_order(
    atconn: AtConnections,
) -> None:
    members = MEMBERS[:60]
    for cid in members:
        atconn.throttle[cid] = 6  # more 429s than FAST_RETRY's 4 attempts allow for 5xx
    client = _client(atconn, rate=2000, burst=100)
    ctx = HandlerContext(connections_client=client)
    try:
        ctx.begin(deadline=time.monotonic() + 60)
        first = ctx.fanout(members, {"action": "broadcast", "n": 1})
        second = ctx.fanout(members, {"action": "broadcast", "n": 2})
        assert ctx.invocation.settle() == []
    finally:
        client.close()
    assert first.delivered == second.delivered == len(members) and not first.failed
    for cid in members:
        assert [m["n"] for m in atconn.received(cid)] == [1, 2]
        assert atconn.attempts[cid] == 6 + 2  # every 429 retried, then both delivered


def test_a_reply_is_not_queued_behind_a_running_broadcast(atconn: AtConnections) -> None:
    atconn.delay_s = 0.005
    client = _client(atconn, rate=100, burst=5)  # 100 recipients: ~1 s at the rate limit
    ctx = HandlerContext(connections_client=client)
    sender = _sender()
    try:
        ctx.begin(deadline=time.monotonic() + 30)
        started = time.monotonic()
        ctx.fanout(MEMBERS[:100], {"action": "broadcast"})
        ctx.reply(sender, {"action": "joined"})  # type: ignore[arg-type]
        assert ctx.invocation.settle() == []
    finally:
        client.close()
    order = [cid for cid, _ in atconn.posts]
    reply_at = atconn.delivered_at[order.index("SENDERaaaaaaaa=")] - started
    last_at = max(atconn.delivered_at) - started
    assert last_at > 0.8  # the broadcast was rate-limited...
    assert reply_at < 0.25  # ...and the reply went out in about its own post time
