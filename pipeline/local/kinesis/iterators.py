"""Shard iterators: opaque tokens that carry a position and the time they were issued.

AWS's iterators are opaque strings (1-512 characters) valid for 5 minutes
(https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html: "A shard
iterator expires 5 minutes after it is returned to the requester"); GetRecords answers a new one
on every call. The twin's token is self-contained (nothing stored per iterator): stream, shard,
the sequence number to read after, the issue time in ms and a serial that makes each one new.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from dataclasses import dataclass

from .exceptions import InvalidArgumentError

ITERATOR_TTL_MS = 300_000
_SERIAL = itertools.count(1)


@dataclass(frozen=True, slots=True)
class IteratorState:
    stream_name: str
    shard_id: str
    after: int  # read records with a sequence number greater than this
    issued_ms: int


def encode(state: IteratorState) -> str:
    """A new opaque token for *state* (two calls never return the same token)."""
    raw = f"{state.stream_name}|{state.shard_id}|{state.after}|{state.issued_ms}|{next(_SERIAL)}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode(token: object) -> IteratorState:
    """The state in *token*; InvalidArgumentException when it is not one of ours."""
    if not isinstance(token, str) or not 1 <= len(token) <= 512:
        raise InvalidArgumentError("Invalid ShardIterator.")
    try:
        stream, shard, after, issued, _ = base64.urlsafe_b64decode(token).decode().split("|")
        return IteratorState(stream, shard, int(after), int(issued))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArgumentError("Invalid ShardIterator.") from exc
