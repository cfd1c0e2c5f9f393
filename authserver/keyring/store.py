"""Signing keys at rest: generation, sealing, loading.

Private keys are PKCS#8 PEM sealed with AES-GCM (security/aead.py), the kid as associated
data; the public JWK is stored beside them in the clear for the JWKS. The kid is the RFC 7638
thumbprint of the public key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.jwk import ECKey, RSAKey

from ..models.signing_key import PENDING, SigningKey
from ..security.aead import Sealer

ALGORITHMS = ("RS256", "ES256")  # RS256 is required for ID tokens (OIDC Core §15.1)


def _generate(alg: str):
    if alg == "RS256":
        return RSAKey.generate_key(2048)
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    raise ValueError(f"unsupported signing algorithm {alg}")


def new_key(alg: str, sealer: Sealer, now: datetime, state: str = PENDING) -> SigningKey:
    key = _generate(alg)
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    return SigningKey(
        kid=kid,
        alg=alg,
        kty=public["kty"],
        state=state,
        public_jwk=json.dumps(public, sort_keys=True),
        private_key_sealed=sealer.seal(key.as_pem(private=True), associated=kid),
        created_at=now,
    )


@dataclass(frozen=True)
class LoadedKey:
    """A key as a process uses it: the private key object is unsealed once, at load."""

    kid: str
    alg: str
    state: str
    public_jwk: dict
    private_key: object  # cryptography private key
    public_key: object

    @classmethod
    def from_row(cls, row: SigningKey, sealer: Sealer) -> LoadedKey:
        pem = sealer.open(row.private_key_sealed, associated=row.kid)
        # The key is ours and authenticated by AES-GCM: skip the RSA consistency check,
        # which costs ~50 ms per key on every reload of the key set.
        private_key = load_pem_private_key(pem, password=None,
                                           unsafe_skip_rsa_key_validation=True)
        return cls(
            kid=row.kid,
            alg=row.alg,
            state=row.state,
            public_jwk=json.loads(row.public_jwk),
            private_key=private_key,
            public_key=private_key.public_key(),
        )
