"""Verifier.verify throughput next to raw PyJWT jwt.decode, in one process.

    .venv/bin/python bench/verifier_bench.py [--seconds 2]

Keys come from a local JWKS server (tests/support/jwks_server.py) over real HTTP; the first
verify fetches them, the timed loop then measures only the verify path. PyJWT gets a pre-built
key object and the same checks (alg, iss, aud, exp/iat required, leeway). Prints figures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import jwt  # noqa: E402

from authserver.verifier import Verifier  # noqa: E402
from tests.support.jwks_server import EC_KID, RSA_KID, running_issuer  # noqa: E402


def rate(fn, seconds: float) -> float:
    """Calls per second of fn() over about `seconds`, best of three rounds."""
    n = 1
    while True:  # calibrate a batch size of roughly 0.1 s
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start > 0.1:
            break
        n *= 2
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            for _ in range(n):
                fn()
            count += n
        best = max(best, count / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    with running_issuer() as issuer:
        verifier = Verifier(issuer=issuer.issuer, audience=issuer.audience)
        claims = issuer.claims(exp=int(time.time()) + 3600)
        print(f"{'alg':6} {'verifier/s':>12} {'raw PyJWT/s':>12} {'ratio':>7}")
        for kid, alg in ((EC_KID, "ES256"), (RSA_KID, "RS256")):
            token = issuer.sign(kid, claims)
            verifier.verify(token)  # warm: discovery + JWKS fetch
            key = issuer.private_keys[kid].public_key()

            def raw(token=token, key=key, alg=alg):
                return jwt.decode(token, key, algorithms=[alg], audience=issuer.audience,
                                  issuer=issuer.issuer, leeway=5,
                                  options={"require": ["exp", "iat", "iss", "aud"]})

            assert raw() == verifier.verify(token)  # same token, same verdict
            ours, theirs = rate(lambda t=token: verifier.verify(t), args.seconds), \
                rate(raw, args.seconds)
            print(f"{alg:6} {ours:12,.0f} {theirs:12,.0f} {ours / theirs:7.0%}")
        print(f"JWKS fetches during the run: {issuer.jwks_fetches}")


if __name__ == "__main__":
    main()
