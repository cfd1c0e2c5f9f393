"""JWS signing with exactly the one active key of an algorithm.

Authlib, given a key set, picks a key at random (ARCHITECTURE gap 6); we never hand it keys:
every JWT this server issues is signed here, with the active key from the key set and its kid
in the header. PyJWT does the JWS work over ``cryptography`` key objects unsealed once.
"""

from __future__ import annotations

import jwt

from .keyset import KeySet


class Signer:
    def __init__(self, keyset: KeySet):
        self._keyset = keyset

    def sign(self, claims: dict, alg: str, typ: str = "JWT") -> str:
        key = self._keyset.signing_key(alg)
        return jwt.encode(claims, key.private_key, algorithm=alg,
                          headers={"kid": key.kid, "typ": typ})
