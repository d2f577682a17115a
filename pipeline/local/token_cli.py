"""``python -m pipeline token --sub NAME``: print a JWT the running twin's issuer accepts.

Signed with the key of the twin started with ``-c auth=jwt`` (``.twin/oidc`` by default, see
:mod:`pipeline.local.oidc`), for its issuer and audience. Use it as ``?token=<jwt>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.local.oidc import DEFAULT_DIR, IssuerError, TwinIssuer

HELP = "print a JWT the running twin (-c auth=jwt) accepts"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--sub", required=True, help="the principal (the token's sub claim)")
    parser.add_argument("--ttl", type=int, default=3600, metavar="SECONDS",
                        help="lifetime in seconds (default 3600; negative: already expired)")
    parser.add_argument("--claim", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra claim (repeatable); VALUE is JSON if it parses, else text")
    parser.add_argument("--oidc-dir", type=Path, default=DEFAULT_DIR, metavar="DIR",
                        help=f"the twin issuer's directory (default: {DEFAULT_DIR})")


def parse_claims(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value that is valid JSON (number, true, list...) keeps its type."""
    claims: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--claim {pair!r}: expected KEY=VALUE")
        try:
            claims[key] = json.loads(value)
        except ValueError:
            claims[key] = value
    return claims


def run(args: argparse.Namespace) -> int:
    try:
        claims = parse_claims(args.claim)
        issuer = TwinIssuer.load(args.oidc_dir)
    except (ValueError, IssuerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(issuer.mint(args.sub, args.ttl, claims))
    return 0
