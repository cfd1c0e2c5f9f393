"""ID tokens (OIDC Core §2, §3.1.3.6), signed through the app's Signer.

The Signer uses exactly the one active key of the algorithm (ARCHITECTURE, Authlib gap 6);
Authlib never sees a key. RS256 unless the client registered another supported
``id_token_signed_response_alg`` (OIDC Registration §2).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from .. import clock
from ..extensions import Services
from ..keyring.store import ALGORITHMS
from ..models import Client, User

DEFAULT_ALG = "RS256"
# OIDC Core §2: acr "0" says the authentication does not meet ISO/IEC 29115 level 1 claims;
# a placeholder until authentication levels exist.
ACR = "0"


def alg_for(client: Client) -> str:
    alg = client.id_token_signed_response_alg or DEFAULT_ALG
    return alg if alg in ALGORITHMS else DEFAULT_ALG


def token_hash(value: str, alg: str) -> str:
    """at_hash / c_hash (OIDC Core §3.1.3.6): the left half of the hash the JWS alg uses
    (SHA-256 for RS256 and ES256), base64url without padding."""
    if not alg.endswith("256"):
        raise ValueError(f"no hash for {alg}")
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def issue(svc: Services, client: Client, user: User, *, auth_time: datetime,
          nonce: str | None = None, sid: str | None = None,
          access_token: str | None = None) -> str:
    now = int(clock.timestamp())
    alg = alg_for(client)
    claims = {
        "iss": svc.settings.issuer,
        "sub": user.id,
        "aud": client.client_id,
        "exp": now + svc.settings.id_token_ttl,
        "iat": now,
        "auth_time": int(auth_time.timestamp()),
        "acr": ACR,
        "amr": ["pwd"],  # RFC 8176 §2: password
        "azp": client.client_id,
    }
    if nonce is not None:
        claims["nonce"] = nonce  # echoed unchanged (OIDC Core §3.1.3.7 step 11)
    if sid is not None:
        claims["sid"] = sid  # OIDC Front-Channel Logout §3, used by end_session
    if access_token is not None:
        claims["at_hash"] = token_hash(access_token, alg)
    return svc.signer.sign(claims, alg=alg, typ="JWT")
