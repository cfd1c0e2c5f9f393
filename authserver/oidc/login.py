"""Signing a person in with username and password, and signing out.

A failed login says nothing about whether the username exists: the same answer, and the same
work, since ``verify_password`` checks an unknown user against a dummy argon2id hash (OWASP
Authentication Cheat Sheet, "Authentication Responses"). The audit trail keeps the difference
(``username_known``), never the password or the name typed for an unknown user (it is often a
password typed in the wrong field).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, clock
from ..config import Settings
from ..db import transaction
from ..models import BrowserSession, User
from ..security import passwords
from ..security.tokens import Digester
from . import sessions

MAX_USERNAME = 150
MAX_PASSWORD = 1024  # argon2 would hash more, but nobody types it: a cheap DoS guard


@dataclass(frozen=True)
class SignIn:
    cookie_value: str
    record: BrowserSession
    user: User


def find_user(db: Session, username: str) -> User | None:
    return db.scalars(
        select(User).where(User.username == username, User.deleted_at.is_(None))
    ).first()


def check_credentials(db: Session, username: str, password: str) -> tuple[User | None, bool]:
    """(the user when the password is right and the account usable else None, whether the
    username exists). The same argon2 work is done in every case."""
    if not username or len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
        passwords.verify_password(password[:MAX_PASSWORD], None)
        return None, False
    user = find_user(db, username)
    ok = passwords.verify_password(password, user.password_hash if user else None)
    if not ok or not sessions.user_is_usable(user):
        return None, user is not None
    return user, True


def attempt(db: Session, digester: Digester, settings: Settings, *, username: str,
            password: str, ip: str | None,
            previous: BrowserSession | None) -> SignIn | None:
    """Check the credentials; on success start a new session (ending ``previous``, so a
    session id never survives a sign-in: session fixation) and rehash the password when the
    argon2 parameters changed. Audits ``login.succeeded`` or ``login.failed``; commits."""
    with transaction(db):
        user, known = check_credentials(db, username, password)
        if user is None:
            actor = "system"
            if known:
                actor = f"user:{find_user(db, username).id}"
            audit.record(db, "login.failed", actor=actor, outcome="failure",
                         details={"username_known": known})
            return None
        if passwords.needs_rehash(user.password_hash):
            # The argon2 parameters were raised: upgrade the hash now that we hold the password.
            user.password_hash = passwords.hash_password(password)
            user.updated_at = clock.now()
        if previous is not None:
            sessions.end(db, previous, reason="replaced")
        value, record = sessions.create(db, digester, user, ttl=settings.session_ttl, ip=ip)
        audit.record(db, "login.succeeded", actor=f"user:{user.id}",
                     details={"sid": record.sid, "method": "password"})
    return SignIn(cookie_value=value, record=record, user=user)


def sign_out(db: Session, record: BrowserSession, *, reason: str) -> bool:
    with transaction(db):
        return sessions.end(db, record, reason=reason)
