"""JWS signing with exactly the one active key of an algorithm.

Authlib, given a key set, picks a key at random (ARCHITECTURE gap 6); we never hand it keys:
every JWT this server issues is signed here, with the active key from the key set and its kid
in the header. PyJWT's algorithm objects do the signing over ``cryptography`` keys unsealed
once; the compact serialisation is assembled here so that the protected header, the same for
every token of a key, is encoded once per key rather than per token (the issue's "pre-encoded
JWT headers"; tests verify the result with PyJWT).
"""

from __future__ import annotations

import base64
import json

from jwt.algorithms import get_default_algorithms

from .keyset import KeySet

_ALGORITHMS = get_default_algorithms()


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class Signer:
    def __init__(self, keyset: KeySet):
        self._keyset = keyset
        self._headers: dict[tuple[str, str, str], bytes] = {}  # (kid, alg, typ) -> encoded

    def _header(self, kid: str, alg: str, typ: str) -> bytes:
        encoded = self._headers.get((kid, alg, typ))
        if encoded is None:
            if len(self._headers) > 64:  # retired kids: start over, the active ones refill
                self._headers = {}
            header = {"alg": alg, "kid": kid, "typ": typ}
            encoded = self._headers[(kid, alg, typ)] = b64url(
                json.dumps(header, separators=(",", ":")).encode())
        return encoded

    def sign(self, claims: dict, alg: str, typ: str = "JWT") -> str:
        key = self._keyset.signing_key(alg)
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = self._header(key.kid, alg, typ) + b"." + payload
        signature = _ALGORITHMS[alg].sign(signing_input, key.private_key)
        return (signing_input + b"." + b64url(signature)).decode("ascii")
