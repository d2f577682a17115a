"""loadtest/bench_signing.py runs and reports both signers and their ratio (not a timed test)."""

from __future__ import annotations

import pytest

from loadtest.bench_signing import main, measure


def test_it_reports_both_signers_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    fig = measure(signatures=20, rounds=1)
    assert fig["oursUs"] > 0 and fig["botocoreUs"] > 0
    assert fig["ratio"] == pytest.approx(fig["botocoreUs"] / fig["oursUs"])
    assert main(["--signatures", "20", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "runtime signer" in out and "botocore SigV4Auth" in out and "botocore / runtime" in out


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="signatures"):
        measure(signatures=0)
