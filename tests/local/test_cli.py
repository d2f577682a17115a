"""``python -m pipeline local`` argument handling (no twin started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.__main__ import main


def test_defaults_and_flags_parse() -> None:
    import argparse

    from pipeline.local import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser, "local")
    args = parser.parse_args([])
    assert (args.stage, args.port, args.aws_port, args.no_synth) == ("dev", 8080, 4566, False)
    assert args.assembly.name == "cdk.out" and not args.enforce_limits
    args = parser.parse_args(["--enforce-limits", "--idle-timeout", "5",
                              "--max-connection-life", "60", "--no-synth"])
    assert args.enforce_limits and args.idle_timeout == 5.0 and args.max_connection_life == 60.0


def test_undocumented_aws_rules_are_flags_with_documented_defaults() -> None:
    import argparse

    from pipeline.local import cli
    from pipeline.local.gateway import GatewayRules

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser, "local")
    args = parser.parse_args([])
    assert (args.integration_response_selection, args.connect_failure) == ("status", "refuse")
    assert GatewayRules() == GatewayRules("status", "refuse")
    args = parser.parse_args(["--integration-response-selection", "lambda-like",
                              "--connect-failure", "accept"])
    assert (args.integration_response_selection, args.connect_failure) == ("lambda-like", "accept")
    with pytest.raises(SystemExit):
        parser.parse_args(["--integration-response-selection", "errorMessage"])
    with pytest.raises(ValueError, match="connect_failure"):
        GatewayRules(connect_failure="maybe")


@pytest.mark.parametrize("flag", ["--port", "--aws-port"])
def test_out_of_range_port_is_refused(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "--no-synth", flag, "70000"]) == 2
    assert f"{flag} must be 0..65535" in capsys.readouterr().err


def test_missing_assembly_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["local", "--no-synth", "--assembly", str(tmp_path), "--port", "0",
                 "--aws-port", "0"])
    assert code == 1
    assert "no template" in capsys.readouterr().err


def test_start_up_s_heap_is_frozen_out_of_the_collector_s_full_passes() -> None:
    import gc

    from pipeline.local.cli import settle_heap

    garbage: list[object] = []
    garbage.append(garbage)  # a cycle: collected first, never frozen
    del garbage
    try:
        frozen = settle_heap()
        assert frozen == gc.get_freeze_count() > 10_000
        assert gc.get_count()[2] == 0 and not gc.garbage
    finally:
        gc.unfreeze()
