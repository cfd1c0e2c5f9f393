"""Incident response: the runbook's steps (README, "Incident runbook") as services shared by
the CLI and the admin API. Each step is one transaction with its audit event, and takes
effect on every instance: what it changes is read from the database at each validation
(access_tokens.validate, refresh, sessions) or, for keys, within the key-set refresh interval.

- signing key compromised: ``revoke_key`` — unpublished at once, a new key active at once if
  it was the active one, every token it signed inactive.
- client compromised: ``revoke_client_tokens`` — every access token issued to it so far
  inactive (``Client.tokens_revoked_before``), every refresh family revoked; then rotate its
  secret (clients.rotate_secret), or do both in one step with ``rotate_secret=True``.
- user compromised: ``revoke_user`` — every browser session ended, every refresh family
  revoked, every access token issued for the user so far inactive
  (``User.tokens_revoked_before``).

A token issued in the same second as the revocation is revoked too (``iat`` has whole
seconds): clients simply fetch a new one.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import audit, clock
from ..db import transaction
from ..keyring import rotation
from ..models.client import Client
from ..models.grants import BrowserSession
from ..models.token_records import RefreshFamily
from ..models.user import User
from ..oauth import families
from ..security.aead import Sealer
from ..security.tokens import Digester
from .clients import ClientNotFound, NoSecret, rotate_secret
from .schemas import SECRET_METHODS
from .users import UserNotFound

UnknownKey = rotation.UnknownKey

__all__ = ["ClientNotFound", "UnknownKey", "UserNotFound", "revoke_client_tokens",
           "revoke_key", "revoke_user"]


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def revoke_key(session: Session, sealer: Sealer, kid: str, *, actor: str) -> dict:
    """Drop a compromised signing key (see rotation.revoke). Retries when a concurrent
    rotation moved the key set first."""
    for _attempt in range(3):
        try:
            with transaction(session):
                return rotation.revoke(session, sealer, kid, clock.now(), actor=actor)
        except rotation.RotationConflict:
            continue
    raise rotation.RotationConflict()


def revoke_client_tokens(session: Session, client_id: str, *, actor: str,
                         digester: Digester | None = None, rotate: bool = False) -> dict:
    """Everything issued to the client so far stops being active; with ``rotate`` its secret
    is rotated as well (no grace period) and returned once as ``client_secret``."""
    if not isinstance(client_id, str) or not 0 < len(client_id) <= 64:
        raise ClientNotFound(client_id)
    with transaction(session):
        client = session.scalars(
            select(Client).where(Client.client_id == client_id, Client.deleted_at.is_(None))
            .with_for_update()
        ).first()
        if client is None:
            raise ClientNotFound(client_id)
        if rotate and client.token_endpoint_auth_method not in SECRET_METHODS:
            raise NoSecret("this client does not authenticate with a secret")  # nothing done
        now = clock.now()
        client.tokens_revoked_before = client.updated_at = now
        revoked = families.revoke(session, RefreshFamily.client_id == client_id,
                                  reason="client_compromised", now=now)
        audit.record(session, "client.tokens_revoked", actor=actor, client_id=client_id,
                     details={"refresh_families_revoked": revoked})
    body = {"client_id": client_id, "tokens_revoked_before": _iso(now),
            "refresh_families_revoked": revoked}
    if rotate:
        if digester is None:
            raise ValueError("rotating the secret needs the digester")
        _client, secret = rotate_secret(session, digester, client_id, 0, actor=actor)
        body["client_secret"] = secret
    return body


def revoke_user(session: Session, user_id: str, *, actor: str) -> dict:
    """End the user's browser sessions, revoke their refresh families and every access
    token issued for them so far. The account stays enabled: they sign in again."""
    if not isinstance(user_id, str) or not 0 < len(user_id) <= 64:
        raise UserNotFound(user_id)
    with transaction(session):
        user = session.scalars(
            select(User).where(User.id == user_id, User.deleted_at.is_(None))
            .with_for_update()
        ).first()
        if user is None:
            raise UserNotFound(user_id)
        now = clock.now()
        user.tokens_revoked_before = user.updated_at = now
        sessions = session.execute(
            update(BrowserSession)
            .where(BrowserSession.user_id == user_id, BrowserSession.ended_at.is_(None))
            .values(ended_at=now)
        ).rowcount or 0
        revoked = families.revoke(session, RefreshFamily.user_id == user_id,
                                  reason="user_compromised", now=now)
        audit.record(session, "user.tokens_revoked", actor=actor,
                     details={"user_id": user_id, "sessions_ended": sessions,
                              "refresh_families_revoked": revoked})
    return {"user_id": user_id, "tokens_revoked_before": _iso(now),
            "sessions_ended": sessions, "refresh_families_revoked": revoked}
