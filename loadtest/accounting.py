"""Per-stream sequence accounting: lost, duplicated and out-of-order frames.

A *stream* is one sender's numbered frames as seen by one receiver (echo: a connection's own
frames; chat: one room member's frames at another member; broadcast: the publisher's messages at
one connection). Sequence numbers start at 0 and increase by one per frame sent.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, MutableMapping
from dataclasses import dataclass, field


class SeqOutcome(enum.Enum):
    """What a received sequence number means for its stream."""

    IN_ORDER = "in_order"
    OUT_OF_ORDER = "out_of_order"  # first receipt, but a higher number arrived before it
    DUPLICATE = "duplicate"
    UNEXPECTED = "unexpected"  # a number that was never sent (negative or >= sent so far)


@dataclass
class SeqTracker:
    """Receipts of one stream."""

    seen: set[int] = field(default_factory=set)
    highest: int = -1
    duplicated: int = 0
    out_of_order: int = 0
    unexpected: int = 0

    def observe(self, seq: int, sent: int | None = None) -> SeqOutcome:
        """Record the receipt of ``seq``; ``sent`` (if known) bounds the valid numbers."""
        if seq < 0 or (sent is not None and seq >= sent):
            self.unexpected += 1
            return SeqOutcome.UNEXPECTED
        if seq in self.seen:
            self.duplicated += 1
            return SeqOutcome.DUPLICATE
        self.seen.add(seq)
        if seq < self.highest:
            self.out_of_order += 1
            return SeqOutcome.OUT_OF_ORDER
        self.highest = seq
        return SeqOutcome.IN_ORDER

    @property
    def received(self) -> int:
        """Distinct valid frames received."""
        return len(self.seen)

    def lost(self, sent: int) -> int:
        """Frames sent but never received (call once the run has drained)."""
        return sent - sum(1 for s in self.seen if s < sent)


@dataclass(frozen=True)
class StreamCounts:
    """The totals of one receiver (a connection), over all streams it receives."""

    expected: int
    received: int
    lost: int
    duplicated: int
    out_of_order: int
    unexpected: int

    def as_dict(self) -> dict[str, int]:
        return {
            "expected": self.expected,
            "received": self.received,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "outOfOrder": self.out_of_order,
            "unexpected": self.unexpected,
        }

    def add_to(self, totals: MutableMapping[str, int]) -> None:
        """Add these counts to a report's totals (same keys as :meth:`as_dict`)."""
        for key, value in self.as_dict().items():
            totals[key] += value


class Ledger:
    """Every stream of one receiver, keyed by the sender."""

    def __init__(self) -> None:
        self.streams: dict[Hashable, SeqTracker] = {}

    def observe(self, sender: Hashable, seq: int, sent: int | None = None) -> SeqOutcome:
        tracker = self.streams.get(sender)
        if tracker is None:
            tracker = self.streams[sender] = SeqTracker()
        return tracker.observe(seq, sent)

    def counts(self, expected_from: Iterable[tuple[Hashable, int]]) -> StreamCounts:
        """Totals, given how many frames each sender sent that this receiver should get."""
        expected = received = lost = 0
        for sender, sent in expected_from:
            tracker = self.streams.get(sender, SeqTracker())
            expected += sent
            lost += tracker.lost(sent)
        received = sum(t.received for t in self.streams.values())
        return StreamCounts(
            expected=expected,
            received=received,
            lost=lost,
            duplicated=sum(t.duplicated for t in self.streams.values()),
            out_of_order=sum(t.out_of_order for t in self.streams.values()),
            unexpected=sum(t.unexpected for t in self.streams.values()),
        )
