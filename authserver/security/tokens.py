"""Server-generated secrets: generation, digests, constant-time comparison.

Client secrets, access/refresh token ids, authorization codes and the like are 256-bit values
from ``secrets``. They are stored as HMAC-SHA256 under a server-side pepper, not argon2: a
slow hash protects low-entropy human passwords, but a 256-bit random value cannot be guessed
offline anyway, and a slow hash at the token endpoint would turn every wrong secret into a
CPU-cost denial of service (argon2id with argon2-cffi defaults verifies about 6 times a second
per core here). The pepper means a leaked database alone does not even allow confirming a
guess. The stored digest is never accepted as the secret: verification always digests the
presented value first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_BYTES = 32


def generate(nbytes: int = SECRET_BYTES) -> str:
    """A URL-safe random secret with ``nbytes`` of entropy (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


class Digester:
    """Peppered HMAC-SHA256 digests, domain-separated by purpose."""

    def __init__(self, pepper: bytes):
        if len(pepper) < 32:
            raise ValueError("the pepper must be at least 32 bytes")
        self._pepper = pepper

    def digest(self, value: str, purpose: str) -> str:
        mac = hmac.new(self._pepper, purpose.encode() + b"\x00" + value.encode(), hashlib.sha256)
        return mac.hexdigest()

    def verify(self, value: str, stored_digest: str | None, purpose: str) -> bool:
        if not stored_digest or not isinstance(value, str):
            return False
        return hmac.compare_digest(self.digest(value, purpose), stored_digest)

