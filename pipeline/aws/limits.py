"""AWS quotas and ranges, and the account and Region the twin answers as. No I/O.

Imported by the stack and the registry (what a deploy would refuse), the tools (what a call may
carry) and the twin (what it enforces).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import DEFAULT_REGION

# The twin's account and Region: the ones AWS's own samples and moto use (the Region is the
# product's default, so a client that names none talks to the twin's resources).
REGION = DEFAULT_REGION
ACCOUNT_ID = "123456789012"
PARTITION = "aws"

# API Gateway WebSocket API quotas
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table).
WEBSOCKET_FRAME_BYTES = 32 * 1024  # one frame
WEBSOCKET_MESSAGE_BYTES = 128 * 1024  # one message (frames of one message, or one post)
WEBSOCKET_IDLE_TIMEOUT_S = 10 * 60
WEBSOCKET_CONNECTION_LIFE_S = 2 * 60 * 60
INTEGRATION_TIMEOUT_S = 29
WEBSOCKET_NEW_CONNECTIONS_PER_SECOND = 500  # per account and Region

# Kinesis Data Streams quotas
# (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html).
KINESIS_RECORDS_PER_SECOND = 1000  # per shard, writes
KINESIS_BYTES_PER_SECOND = 1024 * 1024  # per shard, writes
KINESIS_MAX_RECORD_BYTES = 1024 * 1024  # data + partition key
KINESIS_MAX_PARTITION_KEY = 256  # characters
KINESIS_PUT_RECORDS_MAX = 500  # records per PutRecords
KINESIS_PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
KINESIS_GET_RECORDS_MAX = 10_000  # records per GetRecords
KINESIS_CONSUMER_READ_BYTES_PER_SECOND = 2 * 1024 * 1024  # per enhanced fan-out consumer, per shard
# A new on-demand stream starts with 4 shards (4 MB/s, 4,000 records/s of writes) and AWS scales
# it from there: https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html
KINESIS_ON_DEMAND_INITIAL_SHARDS = 4


@dataclass(frozen=True)
class Range:
    """An inclusive integer range AWS accepts for a setting."""

    low: int
    high: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and \
            self.low <= value <= self.high


# Lambda event source mapping ranges for a Kinesis source
# (https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html).
# -1 means "infinite" where AWS allows it (retries, record age).
ESM_BATCH_SIZE = Range(1, 10_000)
ESM_BATCHING_WINDOW_S = Range(0, 300)
ESM_PARALLELIZATION_FACTOR = Range(1, 10)
ESM_RETRY_ATTEMPTS = Range(-1, 10_000)
ESM_RECORD_AGE_S = Range(-1, 604_800)  # -1, or at least ESM_RECORD_AGE_MIN_S
ESM_RECORD_AGE_MIN_S = 60
ESM_TUMBLING_WINDOW_S = Range(0, 900)

# Registered (enhanced fan-out) consumers per stream.
# https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
MAX_STREAM_CONSUMERS = 20
