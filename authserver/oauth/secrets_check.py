"""Client secret verification: constant time, against the current digest and, during a
rotation's grace period, the previous one. Never argon2 here (see security/tokens.py)."""

from __future__ import annotations

from datetime import datetime

from ..models.client import Client
from ..security.tokens import Digester

PURPOSE = "client_secret"


def verify_client_secret(client: Client, secret: str, digester: Digester, now: datetime) -> bool:
    if client.secret_expires_at is not None and now >= client.secret_expires_at:
        current_ok = False
    else:
        current_ok = digester.verify(secret, client.secret_digest, PURPOSE)
    previous_ok = (
        client.previous_secret_expires_at is not None
        and now < client.previous_secret_expires_at
        and digester.verify(secret, client.previous_secret_digest, PURPOSE)
    )
    return current_ok or previous_ok
