"""Revoking refresh families: the one statement for every reason a person's grant ends (a
reused refresh token, a replayed code, logout, a consent withdrawn, a user or client deleted,
incident response). Revoking a family revokes its refresh tokens and the access tokens issued
from it (they carry its id as ``grant_id``: access_tokens.validate). A family revoked already
keeps its first reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from .. import clock
from ..models import RefreshFamily


def revoke(db: Session, *where, reason: str, now: datetime | None = None) -> int:
    """Revoke the families matching ``where`` that are not revoked yet, in the caller's
    transaction; how many. No object of the session is refreshed (callers read none)."""
    return db.execute(
        update(RefreshFamily)
        .where(*where, RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=now or clock.now(), revoke_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
