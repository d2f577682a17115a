"""The capacity and cost model: a traffic shape and a price list in, a plan out. No I/O.

Every rule below is one AWS documents; the assumptions the model has to make (envelope size,
time per record, log bytes...) are fields of :class:`Traffic` with their defaults, so a plan
states them and a user can change them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pipeline.aws.limits import (
    KINESIS_BYTES_PER_SECOND,
    KINESIS_CONSUMER_READ_BYTES_PER_SECOND,
    KINESIS_ON_DEMAND_INITIAL_SHARDS,
    KINESIS_RECORDS_PER_SECOND,
    MAX_STREAM_CONSUMERS,
    WEBSOCKET_FRAME_BYTES,
    WEBSOCKET_MESSAGE_BYTES,
    WEBSOCKET_NEW_CONNECTIONS_PER_SECOND,
)
from pipeline.plan import PlanError
from pipeline.plan.prices import PriceList

StreamMode = Literal["provisioned", "on-demand"]
STREAM_MODES: tuple[StreamMode, ...] = ("provisioned", "on-demand")

MIB = 1024 * 1024
GIB = 1024 * MIB
# https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
SHARD_WRITE_BYTES_S = KINESIS_BYTES_PER_SECOND
SHARD_WRITE_RECORDS_S = KINESIS_RECORDS_PER_SECOND
EFO_READ_BYTES_S = KINESIS_CONSUMER_READ_BYTES_PER_SECOND  # per consumer per shard
MAX_CONSUMERS = MAX_STREAM_CONSUMERS
SHARD_QUOTA_US_EAST_1 = 500  # shards per account in us-east-1 (200 in most other Regions)
ON_DEMAND_INITIAL_SHARDS = KINESIS_ON_DEMAND_INITIAL_SHARDS
ON_DEMAND_START_BYTES_S = 4 * MIB  # a new on-demand stream's write capacity
ON_DEMAND_START_RECORDS_S = 4000
PUT_PAYLOAD_UNIT = 25 * 1024  # https://aws.amazon.com/kinesis/data-streams/pricing/
ON_DEMAND_ROUNDING = 1024  # on-demand data in: each record rounded up to 1 KB
# https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
CONNECTIONS_RPS_QUOTA = 10_000  # account-level requests/s, @connections calls included
NEW_CONNECTIONS_S_QUOTA = WEBSOCKET_NEW_CONNECTIONS_PER_SECOND
FRAME_BYTES_MAX = WEBSOCKET_FRAME_BYTES
MESSAGE_BYTES_MAX = WEBSOCKET_MESSAGE_BYTES
MESSAGE_BILLING_BYTES = 32 * 1024  # messages are metered in 32 KB increments
MESSAGE_TIER = 1_000_000_000  # the first billion messages a month at the first-tier price
LAMBDA_CONCURRENCY_QUOTA = 1000  # default concurrent executions per account and Region
# ... but not on a new account: "New AWS accounts have reduced concurrency and memory quotas.
# AWS raises these quotas automatically based on your usage." (Lambda quotas, Important box)
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
NEW_ACCOUNT_NOTE = (
    "a new AWS account's Lambda concurrency quota is below the default 1,000 until AWS raises "
    "it with use: compare the {need:,} the mappings need (shards x ParallelizationFactor x "
    "consumers) with AccountLimit.ConcurrentExecutions of `aws lambda get-account-settings`; "
    "if lower, the mappings are throttled and iterator age grows (request an increase: "
    "Service Quotas, Lambda, Concurrent executions)")
DYNAMODB_READ_BYTES = 4096  # one RRU reads 4 KB strongly consistent, 8 KB eventually
NEAR = 0.8  # "nearly exceeded" from 80 % of a quota


@dataclass(frozen=True)
class Traffic:
    """A traffic shape, with the model's assumptions as defaults."""

    connections: int
    frames_per_minute: float  # per connection
    frame_bytes: int
    broadcasts_per_minute: float = 0.0  # server-side publishes, whole stage
    room_size: int = 0  # members each broadcast reaches
    replies_per_frame: float = 1.0  # postToConnection calls per client frame
    consumers: int = 4
    hours_per_month: float = 730.0
    stream_mode: StreamMode = "provisioned"
    parallelization: int = 1  # ParallelizationFactor of every function
    stage_rate_limit: float = 1000.0  # the stage's default route throttle (config.py)
    headroom: float = 0.25  # shards are sized to run at most (1 - headroom) of their write limit
    session_minutes: float = 120.0  # average connection life; AWS closes at 2 h
    envelope_bytes: int = 400  # what the VTL envelope adds to a frame on the stream
    invocation_ms: float = 20.0  # Lambda time per invocation before its posts (incl. start)
    ms_per_post: float = 1.0  # Lambda time per post (the runtime pipelines posts)
    # Measured instead of the two above for client records (lambda_cost.json): billed ms per
    # 1,000 records with one reply each, at full batches, and the run and consumer it is from.
    billed_ms_per_1000: float | None = None
    billed_source: str = ""
    batch_size: int = 100  # the mappings' BatchSize (registry)
    memory_mb: int = 256  # client-route functions
    broadcast_memory_mb: int = 512
    roster_item_bytes: int = 200
    log_bytes_per_invocation: int = 700  # START/END/REPORT lines plus one EMF line
    failure_rate: float = 0.001  # share of invocations whose batch ends in the on-failure queue

    def check(self) -> None:
        """Raise :class:`PlanError` for a shape the model cannot plan."""
        if self.connections < 0 or self.frames_per_minute < 0 or self.broadcasts_per_minute < 0:
            raise PlanError("connections and rates must be >= 0")
        if self.frame_bytes < 1:
            raise PlanError("frame bytes must be >= 1")
        if self.broadcasts_per_minute > 0 and self.room_size < 1:
            raise PlanError("broadcasts need --room-size >= 1")
        if self.stream_mode not in STREAM_MODES:
            raise PlanError(f"stream mode must be one of {', '.join(STREAM_MODES)}")
        if not 1 <= self.parallelization <= 10:
            raise PlanError("parallelization factor must be 1..10")
        if not 0 <= self.headroom < 1:
            raise PlanError("headroom must be 0 <= h < 1")
        if self.consumers < 1 or self.hours_per_month <= 0 or self.session_minutes <= 0:
            raise PlanError("consumers, hours per month and session minutes must be > 0")
        if self.batch_size < 1 or self.invocation_ms <= 0 or self.ms_per_post < 0:
            raise PlanError("batch size and invocation ms must be > 0, ms per post >= 0")
        if self.billed_ms_per_1000 is not None and self.billed_ms_per_1000 <= 0:
            raise PlanError("measured billed ms per 1,000 records must be > 0")


@dataclass(frozen=True)
class Line:
    """One billed quantity."""

    item: str
    quantity: float
    unit: str
    unit_price_usd: float
    usd: float


@dataclass
class Component:
    """A component's monthly cost: its lines, the first one being its headline quantity."""

    lines: list[Line] = field(default_factory=list)
    headline: Line | None = None  # when the first line is not the whole quantity (tiers)

    @property
    def usd(self) -> float:
        return sum(line.usd for line in self.lines)

    def as_json(self) -> dict[str, Any]:
        head = self.headline or self.lines[0]
        return {
            "monthlyUsd": round(self.usd, 2), "quantity": head.quantity, "unit": head.unit,
            "unitPriceUsd": head.unit_price_usd,
            "lines": [{"item": li.item, "quantity": li.quantity, "unit": li.unit,
                       "unitPriceUsd": li.unit_price_usd, "usd": round(li.usd, 4)}
                      for li in self.lines],
        }  # fmt: skip


@dataclass(frozen=True)
class QuotaWarning:
    """A quota exceeded (or nearly): what, how much, against what."""

    level: Literal["exceeded", "near"]
    quota: str
    value: float
    limit: float
    message: str


@dataclass
class Plan:
    """What :func:`plan` computes."""

    traffic: Traffic
    shards: int
    shards_by: str
    rates: dict[str, float]
    concurrency_per_function: int
    components: dict[str, Component]
    warnings: list[QuotaWarning]
    deploy: str

    @property
    def monthly_usd(self) -> float:
        return sum(c.usd for c in self.components.values())

    @property
    def notes(self) -> list[str]:
        """What the plan cannot know and the reader should check (never a quota warning)."""
        t = self.traffic
        out = [NEW_ACCOUNT_NOTE.format(need=self.concurrency_per_function * t.consumers)]
        if t.billed_ms_per_1000 is not None:
            out.append(f"Lambda duration of client records: measured {t.billed_ms_per_1000:g} "
                       f"billed ms per 1,000 records ({t.billed_source}); the extra replies of "
                       f"a frame and broadcasts at {t.ms_per_post:g} ms per post (assumed)")
        else:
            out.append(f"Lambda duration: assumed {t.invocation_ms:g} ms per invocation and "
                       f"{t.ms_per_post:g} ms per post (no measured cost)")
        return out

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        t = self.traffic
        return {
            "shards": self.shards, "shardsLimitedBy": self.shards_by,
            "streamMode": t.stream_mode, "consumers": t.consumers,
            "concurrencyPerFunction": self.concurrency_per_function,
            "concurrencyTotal": self.concurrency_per_function * t.consumers,
            "connectionsRps": round(self.rates["postsPerS"], 3),
            "newConnectionsPerS": round(self.rates["newConnectionsPerS"], 3),
            "rates": {k: round(v, 3) for k, v in self.rates.items()},
            "monthlyUsd": round(self.monthly_usd, 2),
            "components": {name: c.as_json() for name, c in self.components.items()},
            "warnings": [asdict(w) for w in self.warnings], "notes": self.notes,
            "deploy": self.deploy, "assumptions": asdict(t),
        }  # fmt: skip


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)  # 2.0000000001 from float noise is 2 shards, not 3


def _line(prices: PriceList, key: str, item: str, quantity: float) -> Line:
    p = prices[key]
    return Line(item, quantity, p.unit, p.unit_usd, quantity * p.unit_usd)


def plan(t: Traffic, prices: PriceList) -> Plan:
    """Size the stream and functions for ``t`` and price a month of it."""
    t.check()
    secs = t.hours_per_month * 3600
    frames_s = t.connections * t.frames_per_minute / 60
    new_conn_s = t.connections / (t.session_minutes * 60)
    broadcasts_s = t.broadcasts_per_minute / 60
    client_records_s = frames_s + new_conn_s  # every session ends with a $disconnect record
    records_s = client_records_s + broadcasts_s
    record_bytes = t.frame_bytes + t.envelope_bytes
    write_bytes_s = records_s * record_bytes
    posts_s = frames_s * t.replies_per_frame + broadcasts_s * t.room_size
    rates = {"framesPerS": frames_s, "broadcastsPerS": broadcasts_s, "recordsPerS": records_s,
             "writeBytesPerS": write_bytes_s, "postsPerS": posts_s,
             "newConnectionsPerS": new_conn_s}  # fmt: skip

    util = 1 - t.headroom
    needs = {
        "write bytes (1 MiB/s per shard)": write_bytes_s / (SHARD_WRITE_BYTES_S * util),
        "write records (1,000/s per shard)": records_s / (SHARD_WRITE_RECORDS_S * util),
        "enhanced fan-out reads (2 MiB/s per consumer per shard)":
            write_bytes_s / (EFO_READ_BYTES_S * util),
    }  # fmt: skip
    by = max(needs, key=lambda k: needs[k])
    shards = max(1, _ceil(needs[by]))
    if needs[by] <= 1:
        by = "the minimum of one shard"
    if t.stream_mode == "on-demand":
        # AWS picks the shards; a new on-demand stream starts with 4 (4 MiB/s, 4,000 records/s).
        shards = max(shards, ON_DEMAND_INITIAL_SHARDS)
        by = "on-demand: AWS scales the shards (at least the 4 a new stream starts with)"
    concurrency = shards * t.parallelization
    lanes = _lanes(t, shards, client_records_s, broadcasts_s)
    rates["clientLaneUtilisation"] = lanes["client"][3]
    rates["broadcastLaneUtilisation"] = lanes["broadcast"][3]

    components = {
        "apiGatewayMessages": _messages(t, prices, frames_s, posts_s, secs),
        "apiGatewayConnectionMinutes": Component([_line(
            prices, "apiGatewayConnectionMinutes", "connection minutes",
            t.connections * t.hours_per_month * 60)]),
        **_stream(t, prices, shards, records_s * secs, record_bytes),
        "lambda": _lambda(t, prices, secs, lanes),
        "dynamodb": _dynamodb(t, prices, new_conn_s * secs, frames_s * secs, broadcasts_s * secs),
    }
    invocations = components["lambda"].lines[0].quantity
    components["sqs"] = Component([_line(prices, "sqsRequests", "on-failure send/receive/delete",
                                         invocations * t.failure_rate * 3)])
    components["cloudwatchLogs"] = Component([_line(
        prices, "cloudwatchLogsIngestGb", "function logs",
        invocations * t.log_bytes_per_invocation / GIB)])
    deploy = (f"npx cdk deploy -c shards={shards}" if t.stream_mode == "provisioned"
              else "npx cdk deploy -c streamMode=on-demand")
    result = Plan(t, shards, by, rates, concurrency, components, [], deploy)
    result.warnings.extend(_warnings(result))
    return result


def _messages(t: Traffic, prices: PriceList, frames_s: float, posts_s: float,
              secs: float) -> Component:
    # Received frames and postToConnection calls are both billed messages, each in 32 KB
    # increments; replies are taken to be as large as the frame.
    units = _ceil(t.frame_bytes / MESSAGE_BILLING_BYTES)
    total = (frames_s + posts_s) * secs * units
    first = min(total, MESSAGE_TIER)
    lines = [_line(prices, "apiGatewayMessagesFirstBillion", "messages, first billion", first)]
    if total > MESSAGE_TIER:
        lines.append(_line(prices, "apiGatewayMessagesOverBillion", "messages over one billion",
                           total - MESSAGE_TIER))
    usd = sum(li.usd for li in lines)
    # The headline is all messages at their average price, so quantity x price = monthlyUsd.
    average = usd / total if total else lines[0].unit_price_usd
    return Component(lines, Line("messages", total, "messages (32 KB increments)", average, usd))


def _stream(t: Traffic, prices: PriceList, shards: int, records: float,
            record_bytes: int) -> dict[str, Component]:
    retrieved_gb = t.consumers * records * record_bytes / GIB  # every consumer reads every record
    if t.stream_mode == "provisioned":
        kinesis = Component([
            _line(prices, "kinesisShardHour", "shard-hours", shards * t.hours_per_month),
            _line(prices, "kinesisPutPayloadUnits", "PUT payload units",
                  records * _ceil(record_bytes / PUT_PAYLOAD_UNIT)),
        ])
        efo = Component([
            _line(prices, "kinesisEfoConsumerShardHour", "consumer-shard-hours",
                  t.consumers * shards * t.hours_per_month),
            _line(prices, "kinesisEfoDataGb", "data retrieved", retrieved_gb),
        ])
    else:
        kinesis = Component([
            _line(prices, "kinesisOnDemandStreamHour", "stream-hours", t.hours_per_month),
            _line(prices, "kinesisOnDemandDataInGb", "data written",
                  records * _ceil(record_bytes / ON_DEMAND_ROUNDING) * ON_DEMAND_ROUNDING / GIB),
        ])
        efo = Component([_line(prices, "kinesisOnDemandEfoDataGb", "data retrieved",
                               retrieved_gb)])
    return {"kinesis": kinesis, "enhancedFanOut": efo}


def lane(rate: float, overhead_ms: float, ms_per_record: float, batch_size: int
         ) -> tuple[float, float]:
    """Records per invocation and utilisation at full batches of one shard's poller lane.

    With no batching window the poller invokes again as soon as an invocation returns, so a
    batch holds what arrived meanwhile: n = rate x (overhead + n x per-record) / 1000, i.e.
    n = rate x overhead / (1000 - rate x per-record), at least 1 and at most the batch size.
    The lane keeps up while full batches take less than the time they cover (utilisation < 1).
    """
    if rate <= 0:
        return 1.0, 0.0
    utilisation = rate * (overhead_ms / batch_size + ms_per_record) / 1000
    if rate * ms_per_record >= 1000:
        return float(batch_size), utilisation
    n = rate * overhead_ms / (1000 - rate * ms_per_record)
    return min(float(batch_size), max(1.0, n)), utilisation


def client_ms_per_record(t: Traffic) -> float:
    """Lambda ms per client record: measured (one reply each) plus the frame's extra replies,
    else the assumed time per post for each reply."""
    if t.billed_ms_per_1000 is None:
        return t.replies_per_frame * t.ms_per_post
    return t.billed_ms_per_1000 / 1000 + max(0.0, t.replies_per_frame - 1) * t.ms_per_post


def _lanes(t: Traffic, shards: int, client_records_s: float, broadcasts_s: float
           ) -> dict[str, tuple[float, float, float, float, int]]:
    # Worst case: every client record goes to one consumer (a route's records share a lane).
    lanes = shards * t.parallelization
    per_record = client_ms_per_record(t)
    return {
        "client": (client_records_s, per_record,
                   *lane(client_records_s / lanes, t.invocation_ms, per_record, t.batch_size),
                   t.memory_mb),
        "broadcast": (broadcasts_s, t.room_size * t.ms_per_post,
                      *lane(broadcasts_s / lanes, t.invocation_ms, t.room_size * t.ms_per_post,
                            t.batch_size), t.broadcast_memory_mb),
    }


def _lambda(t: Traffic, prices: PriceList, secs: float,
            lanes: dict[str, tuple[float, float, float, float, int]]) -> Component:
    invocations = gb_s = 0.0
    for name, (records_s, ms_per_record, n, _util, memory) in lanes.items():
        records = records_s * secs
        calls = records / n
        invocations += calls
        if name == "client" and t.billed_ms_per_1000 is not None:
            # measured at full batches, the invocation's own work included; Lambda bills at
            # least 1 ms per invocation
            billed_ms = calls * max(1.0, n * ms_per_record)
        else:
            billed_ms = calls * t.invocation_ms + records * ms_per_record
        gb_s += billed_ms / 1000 * memory / 1024
    return Component([_line(prices, "lambdaRequests", "invocations", invocations),
                      _line(prices, "lambdaArmGbSecond", "duration (arm64)", gb_s)])


def _dynamodb(t: Traffic, prices: PriceList, sessions: float, frames: float,
              broadcasts: float) -> Component:
    # $connect puts and $disconnect deletes one item under 1 KB: 1 WRU each. A fan-out (a
    # broadcast, or a frame answered to several members) queries the room: eventually
    # consistent, 0.5 RRU per 4 KB read.
    wru = sessions * 2
    room_read = _ceil(t.room_size * t.roster_item_bytes / DYNAMODB_READ_BYTES) * 0.5
    frame_read = (_ceil(t.replies_per_frame * t.roster_item_bytes / DYNAMODB_READ_BYTES) * 0.5
                  if t.replies_per_frame > 1 else 0.0)
    rru = broadcasts * room_read + frames * frame_read
    return Component([_line(prices, "dynamodbWriteRequestUnits", "roster writes", wru),
                      _line(prices, "dynamodbReadRequestUnits", "roster reads", rru)])


def _warnings(p: Plan) -> list[QuotaWarning]:
    t, r = p.traffic, p.rates
    checks: list[tuple[str, float, float, str]] = [
        ("@connections requests/s (account quota)", r["postsPerS"], CONNECTIONS_RPS_QUOTA,
         "request a quota increase or batch replies"),
        ("new connections/s (account quota)", r["newConnectionsPerS"], NEW_CONNECTIONS_S_QUOTA,
         "reconnect storms after a deploy hit this first"),
        ("client frames/s (stage throttle rate)", r["framesPerS"], t.stage_rate_limit,
         "raise throttle_rate_limit in PipelineConfig"),
        ("enhanced fan-out consumers per stream", t.consumers, MAX_CONSUMERS,
         "a stream registers at most 20 consumers"),
        ("Lambda concurrency (account default)", p.concurrency_per_function * t.consumers,
         LAMBDA_CONCURRENCY_QUOTA, "request a concurrency increase"),
        ("frame bytes (WebSocket frame limit)", t.frame_bytes, FRAME_BYTES_MAX,
         "frames over 32 KB are refused; messages up to 128 KB must be split into frames"),
        ("record bytes (Kinesis 1 MiB record limit)", t.frame_bytes + t.envelope_bytes, MIB,
         "the stream refuses the record"),
    ]
    if t.stream_mode == "provisioned":
        checks.append(("shards (us-east-1 account quota)", p.shards, SHARD_QUOTA_US_EAST_1,
                       "request a shard quota increase"))
    for name in ("client", "broadcast"):
        checks.append((f"{name} consumer utilisation per shard at full batches",
                       r[f"{name}LaneUtilisation"], 1.0,
                       "raise parallelizationFactor or the shard count, or iterator age grows"))
    if t.stream_mode == "on-demand":
        checks.append(("writes/s vs a new on-demand stream's 4,000 records/s",
                       r["recordsPerS"], ON_DEMAND_START_RECORDS_S,
                       "a new on-demand stream doubles its previous peak within 15 min; ramp up"))
        checks.append(("write bytes/s vs a new on-demand stream's 4 MiB/s",
                       r["writeBytesPerS"], ON_DEMAND_START_BYTES_S, "ramp up or pre-warm"))
    out: list[QuotaWarning] = []
    for quota, value, limit, advice in checks:
        if value > limit:
            out.append(QuotaWarning("exceeded", quota, round(value, 3), limit,
                                f"{quota}: {value:,.1f} exceeds {limit:,.0f}: {advice}"))
        elif value >= NEAR * limit and value > 0:
            out.append(QuotaWarning("near", quota, round(value, 3), limit,
                                f"{quota}: {value:,.1f} is {value / limit:.0%} of {limit:,.0f}: "
                                f"{advice}"))
    return out
