#!/usr/bin/env python3
"""SigV4 verification of requests each signed on its own, in-process: the C build of the
signature (kms_iac/backend/_sigv4_native.c) against sigv4.py's Python code and botocore's
signer, on the same requests.

What it measures is :func:`kms_iac.backend.sigv4.verify` per request, without the replay
memo (SDK clients sign every request afresh): parsing the Authorization header, the checks,
the expected signature and its comparison. The three ways are alternated within each round;
the figure is the best round (on a shared machine noise only adds time). Every way must
accept every request, so a fast wrong answer cannot score.

Example::

    python benchmarks/bench_sigv4.py --requests 3000 --rounds 15
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server  # noqa: E402  (sibling module; the benchmarks dir is not a package)

from kms_iac.backend import sigv4  # noqa: E402
from kms_iac.backend.principals import as_directory  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="distinct signed Encrypt requests (default 3000)")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    directory = as_directory(bench_server.PRINCIPALS)
    requests = []
    for n in range(args.requests):
        body, headers = bench_server.sign_request("http://127.0.0.1:4599", "Encrypt",
                                                  {"KeyId": "alias/bench", "Plaintext": b"x" * 64},
                                                  bench_server.ROOT_CREDENTIALS, nonce=str(n))
        requests.append(({k.lower(): v for k, v in headers.items()}, body))
    native = sigv4._native_signature
    original = sigv4.expected_signature
    ways: dict[str, Callable[..., str]] = {}
    if native is not None:
        ways["C"] = original
    ways["Python"] = lambda secret, auth, stamp, headers, method, path, body, query="": \
        sigv4.python_signature(secret, auth, stamp, headers, method, body)
    ways["botocore"] = sigv4.botocore_signature
    best = {name: float("inf") for name in ways}
    now = time.time()
    try:
        for _ in range(args.rounds):
            for name, way in ways.items():
                sigv4.expected_signature = way  # what verify() calls
                start = time.perf_counter()
                for headers, body in requests:
                    entry, _auth = sigv4.verify(directory, headers, "POST", "/", body, now)
                    assert entry.arn.endswith(":root")
                best[name] = min(best[name], (time.perf_counter() - start) / len(requests))
    finally:
        sigv4.expected_signature = original
    print(f"verify(), {args.requests} requests each signed on its own, best of {args.rounds} alternated rounds; "
          f"Python {sys.version.split()[0]} at {sys.executable}")
    if native is None:
        print("the C build is not installed here (no compiler or headers at setup): Python and botocore only")
    for name, seconds in best.items():
        ratio = "" if name == "Python" else f"  ({best['Python'] / seconds:.2f}x Python's speed)"
        print(f"  {name:9s} {seconds * 1e6:6.2f} µs per request{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
