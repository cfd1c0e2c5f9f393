"""Encryption at rest for private keys: AES-256-GCM under a list of key-encryption keys.

The first KEK encrypts; every KEK in the list decrypts, so an operator rotates the KEK by
prepending a new one and re-encrypting at leisure. The signing key's ``kid`` is the associated
data: a ciphertext moved to another row does not decrypt.

Stored form (ASCII): ``v1.<kek id>.<base64url nonce>.<base64url ciphertext+tag>``.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class DecryptionError(Exception):
    """The ciphertext is not ours, was altered, or its KEK is gone."""


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Kek:
    id: str
    key: bytes

    def __post_init__(self):
        if len(self.key) != 32:
            raise ValueError("a key-encryption key is 32 bytes")
        if not self.id or "." in self.id or ":" in self.id or "," in self.id:
            raise ValueError("a key-encryption key id is a short token without . : ,")

    @classmethod
    def generate(cls) -> Kek:
        return cls(id=secrets.token_hex(4), key=AESGCM.generate_key(bit_length=256))

    def serialise(self) -> str:
        return f"{self.id}:{b64e(self.key)}"

    @classmethod
    def parse(cls, text: str) -> Kek:
        kek_id, _, key = text.strip().partition(":")
        return cls(id=kek_id, key=b64d(key))


class Sealer:
    """Encrypts with the first KEK, decrypts with any."""

    def __init__(self, keks: list[Kek]):
        if not keks:
            raise ValueError("at least one key-encryption key is needed")
        self._keks = {k.id: AESGCM(k.key) for k in keks}
        self._primary = keks[0].id

    def seal(self, plaintext: bytes, associated: str) -> str:
        nonce = secrets.token_bytes(12)
        ct = self._keks[self._primary].encrypt(nonce, plaintext, associated.encode())
        return f"v1.{self._primary}.{b64e(nonce)}.{b64e(ct)}"

    def open(self, sealed: str, associated: str) -> bytes:
        try:
            version, kek_id, nonce, ct = sealed.split(".")
        except ValueError:
            raise DecryptionError("malformed ciphertext") from None
        aead = self._keks.get(kek_id)
        if version != "v1" or aead is None:
            raise DecryptionError("unknown key-encryption key")
        try:
            return aead.decrypt(b64d(nonce), b64d(ct), associated.encode())
        except (InvalidTag, ValueError):
            raise DecryptionError("ciphertext does not authenticate") from None
