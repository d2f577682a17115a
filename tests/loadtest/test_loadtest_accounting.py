from __future__ import annotations

from loadtest.accounting import Ledger, SeqOutcome, SeqTracker


def test_in_order_receipts_lose_nothing() -> None:
    t = SeqTracker()
    assert [t.observe(s, 5) for s in range(5)] == [SeqOutcome.IN_ORDER] * 5
    assert (t.received, t.lost(5), t.duplicated, t.out_of_order) == (5, 0, 0, 0)


def test_loss_duplicates_and_reordering_are_counted_separately() -> None:
    t = SeqTracker()
    outcomes = [t.observe(s, 10) for s in (0, 2, 1, 2, 5, 4, 9)]
    assert outcomes == [
        SeqOutcome.IN_ORDER, SeqOutcome.IN_ORDER, SeqOutcome.OUT_OF_ORDER, SeqOutcome.DUPLICATE,
        SeqOutcome.IN_ORDER, SeqOutcome.OUT_OF_ORDER, SeqOutcome.IN_ORDER,
    ]  # fmt: skip
    assert t.received == 6
    assert t.duplicated == 1
    assert t.out_of_order == 2
    assert t.lost(10) == 4  # 3, 6, 7, 8


def test_numbers_never_sent_are_unexpected_not_received() -> None:
    t = SeqTracker()
    assert t.observe(-1, 3) is SeqOutcome.UNEXPECTED
    assert t.observe(3, 3) is SeqOutcome.UNEXPECTED
    assert (t.received, t.unexpected, t.lost(3)) == (0, 2, 3)


def test_ledger_counts_each_sender_stream_and_senders_never_heard_from() -> None:
    ledger = Ledger()
    for s in (0, 1, 1):
        ledger.observe("a", s)
    ledger.observe("b", 1)
    ledger.observe("b", 0)
    counts = ledger.counts([("a", 3), ("b", 2), ("silent", 4)])
    assert counts.as_dict() == {
        "expected": 9, "received": 4, "lost": 5, "duplicated": 1, "outOfOrder": 1, "unexpected": 0,
    }  # fmt: skip
