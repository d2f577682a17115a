"""Kinesis ARNs as AWS shapes them: a stream's, or an enhanced fan-out consumer's of a stream.

``arn:aws:kinesis:<region>:<account>:stream/<stream>`` and
``arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<consumer>:<creation epoch>``
(https://docs.aws.amazon.com/kinesis/latest/APIReference/API_RegisterStreamConsumer.html).
An event source mapping reads through a consumer exactly when its source is a consumer ARN.
"""

from __future__ import annotations

from dataclasses import dataclass

_CONSUMER = "/consumer/"


@dataclass(frozen=True)
class KinesisSourceArn:
    """An event source ARN: the stream it reads, and the consumer it reads through (if any)."""

    arn: str
    stream_arn: str
    consumer_name: str | None = None

    @property
    def enhanced_fan_out(self) -> bool:
        """Whether records arrive through a registered consumer (SubscribeToShard)."""
        return self.consumer_name is not None

    @classmethod
    def parse(cls, arn: str) -> KinesisSourceArn:
        """Split a stream or consumer ARN (any other string is taken as a stream's)."""
        stream, sep, rest = arn.partition(_CONSUMER)
        if not sep:
            return cls(arn, arn)
        return cls(arn, stream, rest.rsplit(":", 1)[0] if ":" in rest else rest)


def consumer_arn(stream_arn: str, consumer_name: str, created_epoch_s: int) -> str:
    """The ARN AWS gives a consumer registered on ``stream_arn``."""
    return f"{stream_arn}{_CONSUMER}{consumer_name}:{created_epoch_s}"
