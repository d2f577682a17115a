"""``python -m pipeline local --no-iam`` turns the checks off; they are on by default."""

from __future__ import annotations

import argparse

from pipeline.local.cli import add_arguments
from pipeline.local.twin import TwinConfig


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, "local")
    return parser.parse_args(list(argv))


def test_iam_is_on_by_default_and_no_iam_turns_it_off() -> None:
    assert _parse().no_iam is False
    assert TwinConfig().iam is True
    assert _parse("--no-iam").no_iam is True
