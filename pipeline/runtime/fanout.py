"""The fan-out tier: a broadcast becomes pages of recipients, written back to the stream.

A broadcast to a room of N members costs N ``postToConnection`` requests against the account's
quota, so one invocation posting them all would take N / rate seconds and starve every other
route. Instead the producer (``broadcast``) splits the members into pages of at most
``FANOUT_PAGE_SIZE`` recipients and puts each page on the stream as a SERVER envelope with route
key ``fanout``; the ``fanout`` consumer posts each page, so the pages run in parallel across the
stream's shards and the consumer's ParallelizationFactor lanes, each lane at its share of the
quota (:mod:`.ratelimit`).

Order. A member's bucket is ``md5(connectionId) mod L`` (L = shards x ParallelizationFactor of
the fan-out consumer, fixed by the deployment), and every page of a bucket has the partition key
of that bucket in that room. Records of one partition key reach one lane in stream order, and a
broadcast's pages are all accepted by Kinesis before the next broadcast of the room is handled
(the room's broadcasts share a partition key upstream), so each member gets a room's broadcasts
in order whichever page it falls in.

Balance. Bucket b's partition key is chosen so that it hashes into shard ``b // PF`` of an
evenly split stream and into lane ``b mod PF`` (the key's MD5 mod PF: how the twin assigns lanes;
AWS does not document its assignment, see docs/fidelity.md): a broadcast keeps every lane busy
with the same number of recipients, so it finishes in ~N / (the fan-out function's share).

Pure functions (:func:`bucket_of`, :func:`plan_pages`, :func:`lane_key`) and one writer
(:class:`PageWriter`, PutRecords with its partial failures retried).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.aws.limits import KINESIS_PUT_RECORDS_MAX, KINESIS_PUT_RECORDS_MAX_BYTES
from pipeline.names import FANOUT_ROUTE

from .container import container
from .exceptions import PipelineRuntimeError, aws_call_errors

PAGE_ROUTE_KEY = FANOUT_ROUTE
DEFAULT_PAGE_SIZE = 500
HASH_SPACE = 2**128  # Kinesis maps MD5(partition key) onto the shards' hash key ranges
MAX_CALL_RECORDS = KINESIS_PUT_RECORDS_MAX  # PutRecords: <= 500 records, <= 5 MiB per call
MAX_CALL_BYTES = KINESIS_PUT_RECORDS_MAX_BYTES
PUT_ATTEMPTS = 8


class FanoutError(PipelineRuntimeError):
    """Pages could not be written to the stream (the record fails and is retried)."""


@dataclass(frozen=True)
class FanoutShape:
    """Where pages go: page size, shards and the fan-out consumer's ParallelizationFactor."""

    page_size: int = DEFAULT_PAGE_SIZE
    shards: int = 1
    parallelization: int = 1

    @property
    def lanes(self) -> int:
        return max(1, self.shards) * max(1, self.parallelization)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FanoutShape:
        """``FANOUT_PAGE_SIZE``, ``FANOUT_SHARDS``, ``FANOUT_PARALLELIZATION`` (the stack's)."""
        env = os.environ if environ is None else environ
        return cls(page_size=max(1, int(env.get("FANOUT_PAGE_SIZE") or DEFAULT_PAGE_SIZE)),
                   shards=max(1, int(env.get("FANOUT_SHARDS") or 1)),
                   parallelization=max(1, int(env.get("FANOUT_PARALLELIZATION") or 1)))


@dataclass(frozen=True)
class Page:
    """One fan-out task: recipients of one bucket of one room."""

    partition_key: str
    bucket: int
    recipients: tuple[str, ...]


def _md5(text: str) -> int:
    return int.from_bytes(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).digest(), "big")


def bucket_of(connection_id: str, lanes: int) -> int:
    """The bucket of a member: the same for every broadcast of every room."""
    return _md5(connection_id) % max(1, lanes)


@lru_cache(maxsize=4096)
def lane_key(room_key: str, bucket: int, shards: int, parallelization: int) -> str:
    """The partition key of ``bucket``'s pages of a room: one that hashes into shard
    ``bucket // parallelization`` (evenly split shards) and lane ``bucket % parallelization``.
    Deterministic, so every producer container picks the same key."""
    want_shard, want_lane = divmod(bucket, parallelization)
    base = f"fanout#{room_key}#{bucket}"
    for salt in range(100_000):  # ~shards x PF tries on average; bounded
        key = f"{base}~{salt}"
        digest = _md5(key)
        if digest * shards // HASH_SPACE == want_shard and digest % parallelization == want_lane:
            return key
    return base  # not reachable for sane shapes; still one key per bucket: order holds


def plan_pages(room_key: str, members: Iterable[str], shape: FanoutShape) -> list[Page]:
    """Every member (once) in exactly one page; pages of a bucket in member order."""
    lanes = shape.lanes
    groups: dict[int, list[str]] = {}
    for cid in dict.fromkeys(members):
        groups.setdefault(bucket_of(cid, lanes), []).append(cid)
    pages: list[Page] = []
    for bucket in sorted(groups):
        group = groups[bucket]
        key = lane_key(room_key, bucket, shape.shards, shape.parallelization)
        for start in range(0, len(group), shape.page_size):
            pages.append(Page(key, bucket, tuple(group[start:start + shape.page_size])))
    return pages


def page_envelope(page: Page, message: Mapping[str, Any], *, request_time_ms: int,
                  stage: str = "") -> bytes:
    """The SERVER envelope of one page (docs/contracts.md "Fan-out pages")."""
    body = json.dumps({"recipients": list(page.recipients), "message": message},
                      separators=(",", ":"))
    return json.dumps({
        "v": 1, "routeKey": PAGE_ROUTE_KEY, "eventType": "SERVER", "connectionId": "",
        "requestId": str(uuid.uuid4()), "messageId": "", "requestTimeEpoch": request_time_ms,
        "stage": stage, "domainName": "", "sourceIp": "", "principal": "", "body": body,
    }, separators=(",", ":")).encode()


class PageWriter:
    """Puts pages on the stream (``STREAM_NAME``) with PutRecords; one per container."""

    def __init__(self, stream_name: str | None = None, *, client: Any = None) -> None:
        self.stream_name = stream_name or os.environ.get("STREAM_NAME", "")
        if not self.stream_name:
            raise PipelineRuntimeError("STREAM_NAME is not set")
        if client is None:  # the runtime's own client (pipeline.runtime.aws_json), not boto3's
            from .aws_json import kinesis_client

            client = kinesis_client()
        self._kinesis = client

    def write(self, pages: list[Page], message: Mapping[str, Any], *,
              request_time_ms: int) -> int:
        """Write every page; returns the PutRecords calls made. Raises :class:`FanoutError`
        when some are still rejected after the retries (the caller's record then fails)."""
        records = [(p.partition_key, page_envelope(p, message, request_time_ms=request_time_ms))
                   for p in pages]
        calls = 0
        for batch in _batches(records):
            calls += self._put(batch)
        return calls

    def put(self, records: list[tuple[str, bytes]]) -> int:
        """Write ``(partition key, data)`` records (e.g. presence deltas); the calls made.
        Raises :class:`FanoutError` like :meth:`write`."""
        return sum(self._put(batch) for batch in _batches(records))

    def _put(self, batch: list[tuple[str, bytes]]) -> int:
        # Retrying only the rejected entries may put them after later pages of their key; that
        # is safe: the pages of one broadcast have disjoint recipients.
        pending = batch
        for attempt in range(PUT_ATTEMPTS):
            try:
                answer = self._kinesis.put_records(StreamName=self.stream_name, Records=[
                    {"Data": data, "PartitionKey": key} for key, data in pending])
            except aws_call_errors("ClientError", "BotoCoreError") as exc:
                raise FanoutError(f"PutRecords failed: {exc}") from exc
            if not answer.get("FailedRecordCount"):
                return attempt + 1
            pending = [entry for entry, result in zip(pending, answer["Records"], strict=True)
                       if result.get("ErrorCode")]
            time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))  # full jitter
        raise FanoutError(f"{len(pending)} page(s) still rejected after {PUT_ATTEMPTS} attempts")


def _batches(records: list[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    size = 0
    for key, data in records:
        cost = len(data) + len(key.encode())
        if batch and (len(batch) == MAX_CALL_RECORDS or size + cost > MAX_CALL_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((key, data))
        size += cost
    if batch:
        yield batch


def page_writer() -> PageWriter:
    """The container's writer for ``STREAM_NAME``."""
    name = os.environ.get("STREAM_NAME", "")
    shared = container()
    return shared.shared(shared.page_writers, name, lambda: PageWriter(name or None))
