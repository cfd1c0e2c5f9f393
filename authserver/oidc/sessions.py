"""Browser sessions: who is signed in at this browser, kept server-side so it can be ended.

The cookie holds a 256-bit random value; the table keeps only its peppered digest, so a
database leak does not hand out live sessions (ARCHITECTURE principle 7). ``sid`` is a
separate public identifier: it goes into ID tokens (OIDC Front-Channel Logout §3 / RP-Initiated
Logout) and audit events, and knowing it does not let anyone use the session.

A session counts only while it is not ended, not expired, its user exists and is enabled,
and it was created after the user's ``tokens_revoked_before`` (incident response).
This module knows nothing about Flask; web/browser.py moves the value in and out of cookies.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import audit, clock
from ..models import BrowserSession, RefreshFamily, User
from ..oauth import families
from ..security import tokens
from ..security.tokens import Digester

COOKIE_NAME = "authserver_session"
LOGOUT = "logout"  # the reason of a session ended by the person (end_session_endpoint)
OFFLINE_ACCESS = "offline_access"
_PURPOSE = "browser-session"


@dataclass(frozen=True)
class SignedIn:
    """A live session and its user."""

    record: BrowserSession
    user: User

    @property
    def sid(self) -> str:
        return self.record.sid

    @property
    def auth_time(self) -> datetime:
        return self.record.auth_time


def user_is_usable(user: User | None) -> bool:
    return user is not None and user.enabled and user.deleted_at is None


def create(db: Session, digester: Digester, user: User, *, ttl: int,
           ip: str | None) -> tuple[str, BrowserSession]:
    """A new session for ``user`` signed in now; returns (cookie value, record).
    The caller commits (with its audit event)."""
    value = tokens.generate()
    now = clock.now()
    record = BrowserSession(
        id=digester.digest(value, _PURPOSE),
        sid=secrets.token_urlsafe(24),
        user_id=user.id,
        auth_time=now,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
        ip=ip,
    )
    db.add(record)
    return value, record


def load(db: Session, digester: Digester, cookie_value: str | None) -> SignedIn | None:
    """The live session behind a cookie value, or None (missing, unknown, ended, expired,
    user gone or disabled, or revoked by the user's tokens_revoked_before)."""
    if not cookie_value or len(cookie_value) > 200:
        return None
    record = db.get(BrowserSession, digester.digest(cookie_value, _PURPOSE))
    if record is None or record.ended_at is not None:
        return None
    now = clock.now()
    if record.expires_at <= now:
        return None
    user = db.get(User, record.user_id)
    if not user_is_usable(user):
        return None
    if user.tokens_revoked_before is not None and record.created_at < user.tokens_revoked_before:
        return None
    return SignedIn(record=record, user=user)


def end(db: Session, record: BrowserSession, *, reason: str) -> bool:
    """End a session and audit ``session.ended``; False when it had already ended.
    The conditional UPDATE makes two concurrent logouts record one event. A logout also
    revokes the session's online grants (``revoke_online_grants``)."""
    now = clock.now()
    result = db.execute(
        update(BrowserSession)
        .where(BrowserSession.id == record.id, BrowserSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    record.ended_at = now
    details = {"sid": record.sid, "reason": reason}
    if reason == LOGOUT:
        details["refresh_families_revoked"] = revoke_online_grants(db, record, now)
    audit.record(db, "session.ended", actor=f"user:{record.user_id}", details=details)
    return True


def revoke_online_grants(db: Session, record: BrowserSession, now: datetime) -> int:
    """Revoke the refresh families this session started without ``offline_access`` (OIDC
    Core §11: only an offline grant outlives the person's session; node-oidc-provider and
    Keycloak do the same at logout), and with them their access tokens (``grant_id``).
    A session replaced by a new sign-in keeps them: re-authenticating (``prompt=login``)
    must not cut off the person's apps. Returns how many were revoked."""
    rows = db.execute(
        select(RefreshFamily.id, RefreshFamily.scope)
        .where(RefreshFamily.user_id == record.user_id,  # indexed; few rows per person
               RefreshFamily.session_sid == record.sid, RefreshFamily.revoked_at.is_(None))
    ).all()
    online = [family_id for family_id, scope in rows if OFFLINE_ACCESS not in scope.split()]
    if not online:
        return 0
    return families.revoke(db, RefreshFamily.id.in_(online), reason=LOGOUT, now=now)


def find_by_sid(db: Session, sid: str) -> BrowserSession | None:
    return db.scalars(select(BrowserSession).where(BrowserSession.sid == sid)).first()
