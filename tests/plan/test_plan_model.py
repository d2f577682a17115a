"""The planner against cost examples worked by hand from the published unit prices.

Unit prices (us-east-1, pipeline/plan/prices.json): API Gateway WebSocket messages $1.00 per
million for the first billion a month and $0.80 per million above, connection minutes $0.25 per
million; Kinesis shard-hour $0.015, PUT payload unit (25 KB) $0.014 per million, EFO
consumer-shard-hour $0.015 and $0.013 per GB; Lambda arm64 $0.20 per million requests and
$0.0000133334 per GB-s; DynamoDB on-demand $0.625 per million WRU, $0.125 per million RRU; SQS
$0.40 per million requests; CloudWatch Logs $0.50 per GB.
"""

from __future__ import annotations

import pytest

from pipeline.plan import PlanError
from pipeline.plan.model import Traffic, plan
from pipeline.plan.prices import load_prices

PRICES = load_prices()
SECS = 730 * 3600  # 2,628,000 s in a 730-hour month
GIB = 1024**3


def usd(p: object, name: str) -> float:
    return p.components[name].usd  # type: ignore[attr-defined, no-any-return]


def test_small_echo_stage_by_hand() -> None:
    # 1,000 connections, 6 frames/min of 1,000 B, one reply each; sessions of 120 min.
    p = plan(Traffic(connections=1000, frames_per_minute=6, frame_bytes=1000), PRICES)
    # frames/s = 1000*6/60 = 100; $disconnect records/s = 1000/(120*60) = 0.138889
    records_s = 100 + 1000 / 7200
    # record = 1,000 B frame + 400 B envelope = 1,400 B; 100.14 rec/s * 1,400 B = 137 KiB/s:
    # far below 75 % of one shard's 1 MiB/s and 1,000 rec/s -> 1 shard
    assert p.shards == 1
    # messages: (100 frames + 100 replies)/s * 2,628,000 s = 525,600,000, each one 32 KB unit
    assert p.components["apiGatewayMessages"].headline.quantity == 525_600_000  # type: ignore[union-attr]
    assert usd(p, "apiGatewayMessages") == pytest.approx(525.60)
    # connection minutes: 1000 * 730 h * 60 = 43,800,000 * $0.25/M = $10.95
    assert usd(p, "apiGatewayConnectionMinutes") == pytest.approx(10.95)
    # Kinesis: 730 shard-hours * $0.015 = $10.95; PUT units: 263,165,000 records (1 unit each)
    # * $0.014/M = $3.68431
    assert records_s * SECS == pytest.approx(263_165_000)
    assert usd(p, "kinesis") == pytest.approx(10.95 + 263.165 * 0.014)
    # EFO: 4 consumers * 1 shard * 730 h * $0.015 = $43.80; data: 4 * 263,165,000 * 1,400 B
    # = 1,372.51 GiB * $0.013 = $17.8427
    assert usd(p, "enhancedFanOut") == pytest.approx(43.80 + 4 * 263_165_000 * 1400 / GIB * 0.013)
    # Lambda: one lane of 100.139 rec/s, 20 ms per invocation + 1 ms per post:
    # n = 100.139*20/(1000 - 100.139*1) = 2.2257 records per invocation
    n = records_s * 20 / (1000 - records_s)
    invocations = records_s * SECS / n  # 118,238,... invocations
    gb_s = (invocations * 20 + records_s * SECS * 1) / 1000 * 256 / 1024
    assert usd(p, "lambda") == pytest.approx(invocations * 0.2e-6 + gb_s * 0.0000133334)
    # DynamoDB: 2 WRU per session (PutItem on $connect, DeleteItem on $disconnect):
    # 0.138889/s * 2,628,000 s * 2 = 730,000 WRU * $0.625/M = $0.45625; no room reads
    assert usd(p, "dynamodb") == pytest.approx(0.45625)
    # SQS: 0.1 % of invocations fail to the queue, 3 requests each, $0.40/M
    assert usd(p, "sqs") == pytest.approx(invocations * 0.001 * 3 * 0.4e-6)
    # Logs: 700 B per invocation at $0.50/GB
    assert usd(p, "cloudwatchLogs") == pytest.approx(invocations * 700 / GIB * 0.5)
    assert p.monthly_usd == pytest.approx(sum(c.usd for c in p.components.values()))
    assert p.deploy == "npx cdk deploy -c shards=1"


def test_broadcast_heavy_by_hand() -> None:
    # 500 idle listeners; a backend publishes 30 times a minute to a room of all 500.
    p = plan(Traffic(connections=500, frames_per_minute=0, frame_bytes=500,
                     broadcasts_per_minute=30, room_size=500), PRICES)
    # posts: 0.5 broadcasts/s * 500 members = 250/s -> 250 * 2,628,000 = 657,000,000 messages
    assert p.rates["postsPerS"] == 250
    assert usd(p, "apiGatewayMessages") == pytest.approx(657.0)
    # the fan-out dominates: messages are most of the bill, connection minutes
    # 500 * 730 * 60 = 21,900,000 * $0.25/M = $5.475
    assert usd(p, "apiGatewayConnectionMinutes") == pytest.approx(5.475)
    # each broadcast queries the room: ceil(500 * 200 B / 4 KB) = 25 reads * 0.5 RRU (eventually
    # consistent) = 12.5 RRU; 0.5/s * 2,628,000 = 1,314,000 broadcasts -> 16,425,000 RRU
    # * $0.125/M = $2.053125; writes: 500/7200 * 2,628,000 * 2 = 365,000 WRU * $0.625/M
    assert usd(p, "dynamodb") == pytest.approx(2.053125 + 0.228125)
    # Lambda: broadcasts one per invocation (0.5/s is far below a lane's capacity), each
    # 20 ms + 500 posts * 1 ms at 512 MB; the disconnects one per invocation at 256 MB:
    # GB-s = 1,314,000 * 0.520 * 0.5 + 182,500 * 0.021 * 0.25 = 341,640 + 958.125
    invocations = 1_314_000 + 182_500
    gb_s = 341_640 + 958.125
    assert usd(p, "lambda") == pytest.approx(invocations * 0.2e-6 + gb_s * 0.0000133334)
    assert usd(p, "apiGatewayMessages") > 0.9 * (p.monthly_usd - usd(p, "enhancedFanOut")
                                                 - usd(p, "kinesis") - usd(p, "lambda"))


def test_crossing_the_billion_message_tier_by_hand() -> None:
    # The example: 10,000 connections * 6 frames/min of 1,000 B, one reply each.
    p = plan(Traffic(connections=10_000, frames_per_minute=6, frame_bytes=1000), PRICES)
    # (1,000 frames + 1,000 replies)/s * 2,628,000 s = 5,256,000,000 messages:
    # 1,000,000,000 * $1.00/M = $1,000 + 4,256,000,000 * $0.80/M = $3,404.80 -> $4,404.80
    messages = p.components["apiGatewayMessages"]
    assert messages.usd == pytest.approx(4404.80)
    assert [li.quantity for li in messages.lines] == [1_000_000_000, 4_256_000_000]
    # 1,001.4 rec/s * 1,400 B = 1.34 MiB/s; / (1 MiB/s * 75 %) = 1.78 -> 2 shards
    assert p.shards == 2 and p.shards_by.startswith("write bytes")
    assert p.deploy == "npx cdk deploy -c shards=2"
    # 1,000 client frames/s is 100 % of the stage's 1,000 rps throttle
    assert any(w.level == "near" and "stage throttle" in w.quota for w in p.warnings)


def test_frames_over_32_kb_bill_two_messages_and_warn() -> None:
    small = plan(Traffic(connections=10, frames_per_minute=1, frame_bytes=32 * 1024), PRICES)
    big = plan(Traffic(connections=10, frames_per_minute=1, frame_bytes=32 * 1024 + 1), PRICES)
    assert big.components["apiGatewayMessages"].usd == pytest.approx(
        2 * small.components["apiGatewayMessages"].usd)
    assert [w.quota for w in big.warnings if w.level == "exceeded"] == [
        "frame bytes (WebSocket frame limit)"]


def test_quota_warnings_exceeded_and_near() -> None:
    # 12,000 posts/s > 10,000; 2,000,000 connections over 60 min = 555.6 new/s > 500
    p = plan(Traffic(connections=2_000_000, frames_per_minute=0.36, frame_bytes=100,
                     session_minutes=60, consumers=21), PRICES)
    exceeded = {w.quota for w in p.warnings if w.level == "exceeded"}
    assert "@connections requests/s (account quota)" in exceeded
    assert "new connections/s (account quota)" in exceeded
    assert "enhanced fan-out consumers per stream" in exceeded
    near = plan(Traffic(connections=85_000, frames_per_minute=6, frame_bytes=100), PRICES)
    by_quota = {w.quota: w for w in near.warnings}
    assert by_quota["@connections requests/s (account quota)"].level == "near"  # 8,500/s
    quiet = plan(Traffic(connections=100, frames_per_minute=1, frame_bytes=100), PRICES)
    assert quiet.warnings == []


def test_slow_consumer_warns_that_it_cannot_keep_up() -> None:
    # 900 rec/s on one shard, 10 replies per frame at 1 ms: 9 s of posting per second
    p = plan(Traffic(connections=9000, frames_per_minute=6, frame_bytes=10,
                     replies_per_frame=10, headroom=0), PRICES)
    assert p.shards == 1
    assert any(w.level == "exceeded" and w.quota.startswith("client consumer utilisation")
               for w in p.warnings)
    wider = plan(Traffic(connections=9000, frames_per_minute=6, frame_bytes=10,
                         replies_per_frame=10, headroom=0, parallelization=10), PRICES)
    assert not any(w.quota.startswith("client consumer") and w.level == "exceeded"
                   for w in wider.warnings)
    assert wider.concurrency_per_function == 10


def test_on_demand_bills_data_and_stream_hours() -> None:
    p = plan(Traffic(connections=1000, frames_per_minute=6, frame_bytes=1000,
                     stream_mode="on-demand"), PRICES)
    records = (100 + 1000 / 7200) * SECS
    # 730 stream-hours * $0.04 = $29.20; data in: 1,400 B rounds up to 2 KB per record
    # -> records * 2048 B / 1 GiB * $0.08
    assert usd(p, "kinesis") == pytest.approx(29.20 + records * 2048 / GIB * 0.08)
    # EFO on on-demand: $0.05 per GB retrieved, no consumer-shard-hours
    assert usd(p, "enhancedFanOut") == pytest.approx(4 * records * 1400 / GIB * 0.05)
    assert p.shards == 4  # what a new on-demand stream starts with
    assert p.deploy == "npx cdk deploy -c streamMode=on-demand"


@pytest.mark.parametrize("bad", [
    {"frame_bytes": 0}, {"broadcasts_per_minute": 1, "room_size": 0}, {"parallelization": 11},
    {"headroom": 1.0}, {"stream_mode": "serverless"},
])
def test_bad_shapes_are_refused(bad: dict[str, object]) -> None:
    shape: dict[str, object] = {"connections": 10, "frames_per_minute": 1, "frame_bytes": 10}
    with pytest.raises(PlanError):
        plan(Traffic(**{**shape, **bad}), PRICES)  # type: ignore[arg-type]


def test_every_price_names_its_aws_page_and_date() -> None:
    for price in PRICES.prices.values():
        assert price.source.startswith("https://aws.amazon.com/")
        assert len(price.read_on) == 10 and price.read_on[4] == "-"


def test_the_plan_notes_a_new_accounts_lower_lambda_concurrency_quota() -> None:
    """Issue 21, finding 7: new accounts start below the 1,000 default ("New AWS accounts have
    reduced concurrency and memory quotas", Lambda quotas page); the plan says what to compare."""
    from pipeline.plan.cli import format_plan

    p = plan(Traffic(connections=1000, frames_per_minute=6, frame_bytes=1000), load_prices())
    need = p.concurrency_per_function * p.traffic.consumers
    note = p.notes[0]
    assert "new AWS account" in note and f"{need:,}" in note
    assert "get-account-settings" in note
    assert p.as_json()["notes"] == p.notes
    assert f"note: {note}" in format_plan(p)


def test_measured_billed_time_prices_client_records_and_is_named() -> None:
    shape = {"connections": 10_000, "frames_per_minute": 6, "frame_bytes": 200}
    assumed = plan(Traffic(**shape), load_prices())
    cheap = plan(Traffic(**shape, billed_ms_per_1000=100.0, billed_source="echo; run X"),
                 load_prices())
    dear = plan(Traffic(**shape, billed_ms_per_1000=10_000.0, billed_source="echo; run X"),
                load_prices())
    duration = [p.components["lambda"].lines[1].quantity for p in (cheap, dear, assumed)]
    assert duration[0] < duration[1] and duration[0] != duration[2]
    assert any("measured 100 billed ms per 1,000 records (echo; run X)" in n for n in cheap.notes)
    assert any("assumed 20 ms per invocation" in n for n in assumed.notes)
    assert cheap.as_json()["assumptions"]["billed_ms_per_1000"] == 100.0


def test_an_invocation_is_billed_at_least_one_millisecond() -> None:
    # 1 frame/s on 1 shard: every batch holds one record of 0.1 ms, billed as 1 ms
    p = plan(Traffic(connections=60, frames_per_minute=1, frame_bytes=200,
                     billed_ms_per_1000=100.0, billed_source="x"), load_prices())
    invocations, gb_s = (line.quantity for line in p.components["lambda"].lines)
    assert gb_s == pytest.approx(invocations * 1.0 / 1000 * p.traffic.memory_mb / 1024)
