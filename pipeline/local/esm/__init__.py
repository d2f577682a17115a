"""The local twin's Lambda event source mapping engine for Kinesis (and enhanced fan-out).

It reads each shard of a stream for one ``AWS::Lambda::EventSourceMapping``, filters, batches,
invokes the function, and applies Lambda's failure semantics (retries, record age, bisect,
``ReportBatchItemFailures``, on-failure destination, ``ParallelizationFactor``), following
https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html and its subpages.

The interface (all the orchestrator needs)::

    config = MappingConfig.from_cfn(resource["Properties"], logical_id="EchoMapping")
    runner = EventSourceMappingRunner(config, source, invoker, sink,
                                      region=REGION, invoke_identity_arn=role_arn)
    await runner.start()      # no-op for Enabled: false; call inside the twin's event loop
    ...                       # runner.stats: records read/filtered/processed/discarded, ...
    await runner.stop()

Optional keywords: ``clock`` (record age), ``retry_backoff_s``/``max_backoff_s`` (exponential
retry delay, default 0.1 s .. 2 s), ``shard_refresh_s`` (shard list poll for resharding, 5 s).

- ``MappingConfig``: frozen; ``from_cfn`` takes the resolved properties and raises
  ``InvalidMappingConfigError`` (AWS code ``InvalidParameterValueException``) on bad input.
- ``ShardSource`` (the twin implements it over its Kinesis model): ``stream_arn_of``,
  ``shard_ids``, ``read``, ``latest_sequence``, async ``wait_for_records``; yields ``StoredRecord``.
- ``Invoker``: ``async invoke(function_name, event) -> InvokeResult`` (``ok`` False = function
  error: exception, timeout, crashed worker; ``payload`` = the decoded return value).
- ``FailureSink``: ``send(destination_arn, message)`` = SQS ``SendMessage`` with a JSON body.

Decisions live in pure modules (``batching``, ``policy``; the filters and the event shapes are
AWS facts the tools share: :mod:`pipeline.aws.filters`, :mod:`pipeline.aws.events`); ``runner`` is
the thin asyncio layer. ``memory.MemoryStream`` is an in-memory ``ShardSource`` (tests, bench);
``python -m loadtest.bench_esm`` measures the engine's overhead.
"""

from __future__ import annotations

from .config import MappingConfig
from .errors import EsmError, InvalidMappingConfigError
from .interfaces import FailureSink, Invoker, InvokeResult, ShardSource, StoredRecord
from .runner import EventSourceMappingRunner, RunnerStats

__all__ = [
    "EsmError",
    "EventSourceMappingRunner",
    "FailureSink",
    "InvalidMappingConfigError",
    "InvokeResult",
    "Invoker",
    "MappingConfig",
    "RunnerStats",
    "ShardSource",
    "StoredRecord",
]
