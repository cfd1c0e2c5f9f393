"""Consent: what a person allowed a client, remembered per user and client.

A remembered consent covers a request whose scopes are a subset of what was granted, so the
page is shown again only for something new, or when the client asks with ``prompt=consent``
(OIDC Core §3.1.2.1). First-party clients registered with ``skip_consent`` are not asked.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, clock
from ..models import Client, Consent, RefreshFamily, User
from . import families
from . import scopes as scope_lib

# What each scope lets the application do, in words a person can judge.
_WORDS = {
    "openid": "Know who you are (your account identifier)",
    "profile": "See your name and username",
    "email": "See your email address and whether it is verified",
    "offline_access": "Keep access while you are not using it",
    "admin": "Administer this authorization server",
}


def describe(scopes: list[str]) -> list[tuple[str, str]]:
    return [(s, _WORDS.get(s, f"Use the permission \u201c{s}\u201d")) for s in scopes]


def _current(db: Session, user_id: str, client_id: str) -> Consent | None:
    return db.scalars(
        select(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id)
    ).first()


def needed(db: Session, user: User, client: Client, scopes: list[str],
           prompt: frozenset[str]) -> bool:
    if "consent" in prompt:
        return True
    if client.skip_consent:
        return False
    consent = _current(db, user.id, client.client_id)
    if consent is None or consent.revoked_at is not None:
        return True
    return not set(scopes) <= set(scope_lib.split(consent.scope))


def grant(db: Session, user: User, client: Client, scopes: list[str]) -> None:
    """Remember the consent (adding to what was granted before) and audit it."""
    now = clock.now()
    consent = _current(db, user.id, client.client_id)
    if consent is None:
        consent = Consent(id=secrets.token_hex(16), user_id=user.id,
                          client_id=client.client_id, scope="", granted_at=now)
        db.add(consent)
    previous = set() if consent.revoked_at else set(scope_lib.split(consent.scope))
    consent.scope = scope_lib.join(previous | set(scopes))
    consent.granted_at, consent.revoked_at = now, None
    audit.record(db, "consent.granted", actor=f"user:{user.id}", client_id=client.client_id,
                 details={"scope": scope_lib.join(scopes)})


def deny(db: Session, user: User, client: Client, scopes: list[str]) -> None:
    audit.record(db, "consent.denied", actor=f"user:{user.id}", client_id=client.client_id,
                 outcome="failure", details={"scope": scope_lib.join(scopes)})


def revoke(db: Session, user_id: str, client_id: str, *, actor: str) -> bool:
    """Forget a remembered consent: the next authorization asks again, and the client's
    refresh families for this person are revoked with it (what was allowed is withdrawn, not
    just the page). False when there is no active consent. The caller commits."""
    consent = _current(db, user_id, client_id)
    if consent is None or consent.revoked_at is not None:
        return False
    now = clock.now()
    consent.revoked_at = now
    revoked = families.revoke(db, RefreshFamily.user_id == user_id,
                              RefreshFamily.client_id == client_id,
                              reason="consent_revoked", now=now)
    audit.record(db, "consent.revoked", actor=actor, client_id=client_id,
                 details={"user": user_id, "refresh_families_revoked": revoked})
    return True
