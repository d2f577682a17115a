"""SigV4 signing CPU per ``postToConnection``: the runtime's signer vs botocore's ``SigV4Auth``.

Both sign the same ``POST /<stage>/@connections/<id>`` (same body, credentials with a session
token, region) one after the other in this process; the figure is CPU time
(``time.process_time``) per signature, best of a few rounds. botocore's side is what the
runtime would do per post with it: build an ``AWSRequest`` and ``SigV4Auth.add_auth`` it (the
``SigV4Auth`` object is built once and reused). The runtime keeps its own signer
(:mod:`pipeline.runtime.signed_http`) only while botocore's costs more than 1.2x its CPU.

    python -m loadtest.bench_signing [--signatures 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pipeline.runtime.signed_http import SigV4Signer, host_header

ENDPOINT_HOST = "abc123.execute-api.eu-west-3.amazonaws.com"
REGION = "eu-west-3"
THRESHOLD = 1.2  # botocore's signer replaces ours when it costs at most this much CPU


def _cpu_us_per_call(fn: Callable[[int], object], n: int, rounds: int) -> float:
    """Best-of-``rounds`` CPU microseconds per ``fn(i)`` call over ``n`` calls."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for i in range(n):
            fn(i)
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


def measure(signatures: int = 10_000, rounds: int = 3) -> dict[str, float]:
    """CPU µs per signature of each signer and botocore's as a multiple of ours."""
    if not 1 <= signatures <= 10_000_000 or not 1 <= rounds <= 100:
        raise ValueError("signatures must be 1..10000000 and rounds 1..100")
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                        "FwoGZXIvYXdzEJr//session+token==")
    body = json.dumps({"action": "echo", "data": "x" * 100}).encode()
    ids = [quote(f"L0SM{i:010d}Iw=", safe="-._~") for i in range(256)]
    ours = SigV4Signer(lambda: creds, REGION)
    host = host_header("https", ENDPOINT_HOST, None)

    def sign_ours(i: int) -> object:
        return ours.sign(host, "/prod/@connections/" + ids[i & 255], body)

    auth = SigV4Auth(creds, "execute-api", REGION)
    base = f"https://{ENDPOINT_HOST}/prod/@connections/"

    def sign_botocore(i: int) -> object:
        request = AWSRequest("POST", base + ids[i & 255], data=body)
        auth.add_auth(request)
        return request.headers

    reused = AWSRequest("POST", base + ids[0], data=body)

    def resign_botocore(_: int) -> object:
        # A lower bound for botocore: the signature alone, on a request built once.
        auth.add_auth(reused)
        return reused.headers

    for fn in (sign_ours, sign_botocore, resign_botocore):  # warm-up: first-call imports
        fn(0)
    ours_us = _cpu_us_per_call(sign_ours, signatures, rounds)
    botocore_us = _cpu_us_per_call(sign_botocore, signatures, rounds)
    add_auth_us = _cpu_us_per_call(resign_botocore, signatures, rounds)
    return {"signatures": float(signatures), "oursUs": ours_us, "botocoreUs": botocore_us,
            "botocoreAddAuthOnlyUs": add_auth_us, "ratio": botocore_us / ours_us,
            "ratioAddAuthOnly": add_auth_us / ours_us}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_signing",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--signatures", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    fig = measure(args.signatures, args.rounds)
    if args.json:
        print(json.dumps(fig))
        return 0
    print(f"SigV4 signature of a postToConnection request, CPU per signature "
          f"(best of {args.rounds} x {args.signatures}):")
    print(f"  runtime signer (pipeline.runtime.signed_http)  {fig['oursUs']:8.1f} µs")
    print(f"  botocore SigV4Auth.add_auth on an AWSRequest   {fig['botocoreUs']:8.1f} µs")
    print(f"  botocore add_auth alone (one request re-signed) {fig['botocoreAddAuthOnlyUs']:7.1f} µs"
          f"  ({fig['ratioAddAuthOnly']:.2f}x)")
    verdict = "keep the runtime's signer" if fig["ratio"] > THRESHOLD else "use botocore's"
    print(f"  botocore / runtime = {fig['ratio']:.2f}x (threshold {THRESHOLD}x: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
