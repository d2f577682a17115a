"""Record decode throughput: ``pipeline.runtime.records.decode_record`` vs stdlib json + base64."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

BUDGET_S = 3.0  # per measurement, at most


def _envelope(i: int) -> bytes:
    body = json.dumps({"action": "echo", "data": {"s": i, "pad": "x" * 64}})
    return json.dumps({
        "v": 1, "routeKey": "echo", "eventType": "MESSAGE", "connectionId": f"conn{i:08d}=",
        "requestId": f"req-{i}", "messageId": f"msg-{i}", "requestTimeEpoch": 1700000000000 + i,
        "stage": "dev", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
        "sourceIp": "127.0.0.1", "principal": "", "body": body,
    }).encode()  # fmt: skip


def _record(data: bytes, i: int, pk: str) -> dict[str, Any]:
    return {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": pk,
                        "sequenceNumber": str(49590338271490256608559692538361571095921575989136588898 + i),
                        "data": base64.b64encode(data).decode(),
                        "approximateArrivalTimestamp": 1700000000.187},
            "eventSource": "aws:kinesis", "eventName": "aws:kinesis:record"}  # fmt: skip


def _rate(fn: Callable[[dict[str, Any]], object], records: list[dict[str, Any]]) -> float:
    """Decoded (user) records per second, over at most ``BUDGET_S``."""
    done, t0 = 0, time.perf_counter()
    for rec in records:
        result = fn(rec)
        done += len(result) if isinstance(result, list) else 1
        if time.perf_counter() - t0 > BUDGET_S:
            break
    return done / max(time.perf_counter() - t0, 1e-9)


def measure_decode(n: int) -> dict[str, float]:
    """``runtime``, ``stdlib`` and (when aws-kinesis-agg is there) ``aggregated`` records/s."""
    from pipeline.runtime.records import decode_record

    plain = [_record(_envelope(i), i, f"conn{i:08d}=") for i in range(n)]

    def stdlib(rec: dict[str, Any]) -> object:
        return json.loads(base64.b64decode(rec["kinesis"]["data"]))

    out = {"runtime": _rate(decode_record, plain), "stdlib": _rate(stdlib, plain)}
    try:
        from pipeline.aws.kpl import RecordAggregator
    except ImportError:
        return out
    agg = RecordAggregator()
    aggregated: list[dict[str, Any]] = []
    for i in range(min(n, 10_000)):
        full = agg.add_user_record("broadcast#*", _envelope(i))
        if full is not None:
            pk, _, data = full.get_contents()
            aggregated.append(_record(data, i, pk))
        if agg.get_num_user_records() == 100:
            pk, _, data = agg.clear_and_get().get_contents()
            aggregated.append(_record(data, i, pk))
    if aggregated:
        out["aggregated"] = _rate(decode_record, aggregated)
    return out
