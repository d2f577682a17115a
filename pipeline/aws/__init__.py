"""AWS facts the product and the twin share: no I/O, no import of the rest of ``pipeline``.

- :mod:`.limits`: the account and Region the twin answers as, service quotas (Kinesis, API
  Gateway WebSocket, enhanced fan-out) and the ranges Lambda accepts for a Kinesis event source
  mapping;
- :mod:`.errors`: AWS error codes and the JSON-protocol answer shape;
- :mod:`.kinesis`: a stored Kinesis record and the KPL aggregation magic;
- :mod:`.kpl`: KPL aggregation and de-aggregation (aws-kinesis-agg), the one implementation;
- :mod:`.events`: the events Lambda builds for a Kinesis source (invocation, on-failure record);
- :mod:`.filters`: Lambda event filtering for Kinesis (EventBridge pattern syntax).

The CDK stack, the consumer runtime (this package ships in its layer), the tools and the local
twin import these; import-linter (``.importlinter``) keeps this package free of the others.
"""
