"""The stream's open shard count, read with DescribeStreamSummary and cached per container.

The @connections share of a container (:mod:`.ratelimit`) and the fan-out tier's lanes
(:mod:`.fanout`) divide by the number of concurrent invocations, shards x ParallelizationFactor.
The stack only knows the shard count it deployed; an on-demand stream starts with 4 shards and
grows, and ``UpdateShardCount`` reshards a provisioned one (issue 21 finding 2). So the runtime
reads ``OpenShardCount`` (DescribeStreamSummary) and keeps it: read when a container starts, then
at most once per :func:`refresh_interval`, at the start of an invocation, never per record.
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamSummary.html

Cost. DescribeStreamSummary allows 20 transactions per second per account (same page). Every
reading container calls it once per interval, so the interval grows with the containers that
read (open shards x ``SHARD_COUNT_READERS_PER_SHARD``, the stack's sum of the posting functions'
ParallelizationFactor) to keep the account's rate near :data:`DESCRIBE_BUDGET_TPS`:

===========  =====================  =========================================
containers   interval               DescribeStreamSummary per second (account)
===========  =====================  =========================================
10           60 s                   0.17
1,000        500 s                  2 (60 s would be 16.7: most of the 20/s)
100,000      50,000 s (~14 h)       2 (60 s would be 1,667: 83x the limit)
===========  =====================  =========================================

plus one call per cold start. A refused or failed call keeps the last value and is retried
after :data:`RETRY_S` (jittered), so throttling never fails an invocation.

The call. One SigV4-signed JSON 1.1 ``POST`` (``X-Amz-Target:
Kinesis_20131202.DescribeStreamSummary``, :mod:`.aws_json`) at the endpoint boto3 would use, 2 s
connect and read timeouts, no retry of its own: an error answer (``LimitExceededException``,
``ResourceNotFoundException``, 5xx) or none raises :class:`~.exceptions.AwsCallError`, and
:meth:`OpenShardCount.current` keeps its value. Not a boto3 client: the first
``HandlerContext.begin()`` of every container makes this call, and a client would import boto3
and load botocore's endpoint and service JSON there, ~0.55 s of CPU on the first batch here (more
than twice a handler's own import). It signs with the keys Lambda puts in the environment
(:mod:`.credentials`).

Resharding. Growth is adopted at the next reading. A decrease is adopted only when read twice
in a row: after a merge, Lambda still drains the closed parents while the child is read, so for
a while more containers run than there are open shards.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping

from .aws_json import KINESIS_TARGET, JsonApi, endpoint_url
from .container import container
from .credentials import credential_source
from .signed_http import environment_region

REFRESH_S = 60.0
DESCRIBE_BUDGET_TPS = 2.0  # a tenth of the account's 20/s for this stack's readers
RETRY_S = 10.0
STREAM_SHARDS_ENV = "STREAM_SHARDS"  # the stack's count: the value before the first reading
READERS_ENV = "SHARD_COUNT_READERS_PER_SHARD"


def refresh_interval(open_shards: int, readers_per_shard: int) -> float:
    """Seconds between two readings of one container (see the table above)."""
    containers = max(1, open_shards) * max(1, readers_per_shard)
    return max(REFRESH_S, containers / DESCRIBE_BUDGET_TPS)


class OpenShardCount:
    """The cached count; ``describe`` returns ``OpenShardCount`` (or raises). Thread-safe."""

    def __init__(self, describe: Callable[[], int], *, initial: int,
                 readers_per_shard: int = 1, clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], float] = random.random) -> None:
        self._describe = describe
        self._value = max(1, initial)
        self._lower: int | None = None  # a decrease seen once
        self.readers_per_shard = readers_per_shard
        self._clock, self._jitter = clock, jitter
        self._next = clock()  # the first call reads
        self._lock = threading.Lock()
        self.readings = 0  # DescribeStreamSummary calls made (a metric and a test hook)

    def current(self) -> int:
        """The open shard count, read again if the interval has passed."""
        if self._clock() < self._next:
            return self._value
        with self._lock:
            now = self._clock()
            if now < self._next:
                return self._value
            self.readings += 1
            try:
                seen = int(self._describe())
            except Exception:  # throttled or unreachable: keep the last value
                self._next = now + RETRY_S * (0.5 + self._jitter())
                return self._value
            self._adopt(seen)
            interval = refresh_interval(self._value, self.readers_per_shard)
            self._next = now + interval * (0.9 + 0.2 * self._jitter())  # spread the readers
            return self._value

    def _adopt(self, seen: int) -> None:
        if seen >= self._value:
            self._value, self._lower = max(1, seen), None
        elif self._lower is not None:
            self._value, self._lower = max(1, max(seen, self._lower)), None
        else:
            self._lower = seen


def kinesis_api(environ: Mapping[str, str] | None = None) -> JsonApi:
    """The Kinesis JSON API at the endpoint boto3 would use, with the container's credentials
    (:mod:`.credentials`: the environment's keys, no boto3, in a Lambda)."""
    env = os.environ if environ is None else environ
    region = environment_region(env)
    return JsonApi(endpoint_url("Kinesis", "kinesis", region, env), service="kinesis",
                   target_prefix=KINESIS_TARGET, region=region,
                   credentials=credential_source(environ))


def describer(stream_name: str, api: JsonApi | None = None) -> Callable[[], int]:
    """``() -> OpenShardCount`` of the stream (one DescribeStreamSummary call); raises
    :class:`~.exceptions.AwsCallError` on an error answer (throttled, not found...) or none.
    ``api`` defaults to :func:`kinesis_api`, made on the first call."""
    apis = [api] if api is not None else []

    def describe() -> int:
        if not apis:
            apis.append(kinesis_api())
        answer = apis[0].call("DescribeStreamSummary", {"StreamName": stream_name})
        return int(answer["StreamDescriptionSummary"]["OpenShardCount"])
    return describe


def open_shard_count(environ: Mapping[str, str] | None = None) -> OpenShardCount | None:
    """The container's count of ``STREAM_NAME`` (None without ``STREAM_SHARDS``: the stack
    did not ask for live budgets)."""
    env = os.environ if environ is None else environ
    stream, initial = env.get("STREAM_NAME", ""), env.get(STREAM_SHARDS_ENV, "")
    if not stream or not initial.isdigit():
        return None
    readers = env.get(READERS_ENV, "1")
    shared = container()
    return shared.shared(shared.shard_counts, stream, lambda: OpenShardCount(
        describer(stream), initial=int(initial),
        readers_per_shard=int(readers) if readers.isdigit() else 1))
