"""Engine overhead: ``python -m loadtest.bench_esm [--records N] [--latency-samples N]``.

Throughput: records/s through one runner (one shard, batch 100, window 0) with a no-op invoker.
Latency: put -> invoke delay for single records on an idle shard (the hot path, window 0).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from pipeline.local.esm.config import MappingConfig
from pipeline.local.esm.interfaces import InvokeResult
from pipeline.local.esm.memory import MemoryStream
from pipeline.local.esm.runner import EventSourceMappingRunner


class _NoOp:
    def __init__(self) -> None:
        self.records = 0
        self.invocations = 0
        self.invoked_at: list[float] = []
        self.changed = asyncio.Event()

    async def invoke(self, function_name: str, event: dict[str, Any]) -> InvokeResult:
        self.records += len(event["Records"])
        self.invocations += 1
        self.invoked_at.append(time.perf_counter())
        self.changed.set()
        return InvokeResult(True, None)


class _NoSink:
    def send(self, destination_arn: str, message: dict[str, Any]) -> None:
        raise AssertionError("no failures expected")


async def _until(noop: _NoOp, records: int, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while noop.records < records:
            noop.changed.clear()
            await noop.changed.wait()


async def run(records: int, samples: int, batch_size: int = 100) -> dict[str, float]:
    """Measure and return the numbers (also printed by ``main``)."""
    stream = MemoryStream()
    noop = _NoOp()
    config = MappingConfig("bench", "f", stream.stream_arn, batch_size=batch_size)
    runner = EventSourceMappingRunner(config, stream, noop, _NoSink())
    await runner.start()
    try:
        payload = b'{"routeKey":"echo","body":"{\\"action\\":\\"echo\\",\\"data\\":1}"}'
        started = time.perf_counter()
        for i in range(records):
            stream.put(f"conn-{i % 50}", payload)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let the engine run while the producer produces
        await _until(noop, records)
        elapsed = time.perf_counter() - started
        throughput = records / elapsed
        batches = noop.invocations
        delays: list[float] = []
        for _ in range(samples):
            target = noop.records + 1
            put_at = time.perf_counter()
            stream.put("conn-latency", payload)
            await _until(noop, target)
            delays.append((noop.invoked_at[-1] - put_at) * 1000)
    finally:
        await runner.stop()
    delays.sort()
    return {
        "records": records,
        "records_per_s": throughput,
        "mean_batch": records / max(batches, 1),
        "latency_p50_ms": statistics.median(delays),
        "latency_p99_ms": delays[int(len(delays) * 0.99) - 1],
        "latency_max_ms": delays[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--latency-samples", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(run(args.records, args.latency_samples))
    print(
        f"throughput: {result['records_per_s']:,.0f} records/s "
        f"({result['records']:,} records, mean batch {result['mean_batch']:.1f})\n"
        f"put->invoke: p50 {result['latency_p50_ms']:.3f} ms, "
        f"p99 {result['latency_p99_ms']:.3f} ms, max {result['latency_max_ms']:.3f} ms"
    )


if __name__ == "__main__":
    main()
