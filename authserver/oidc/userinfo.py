"""UserInfo (OIDC Core §5.3): the claims of the person an access token speaks for.

Any active access token of this issuer (access_tokens.validate: signature, expiry, revocation,
client and user still valid, refresh family not revoked) whose scope holds ``openid``; the
claims returned are those of the granted scopes (OIDC Core §5.4). Errors follow RFC 6750 §3.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..extensions import Services
from ..models import User
from ..oauth import access_tokens, scopes
from . import sessions

# OIDC Core §5.4: which claims each scope value requests (those this server holds).
SCOPE_CLAIMS = {
    "profile": ("name", "given_name", "family_name", "preferred_username", "updated_at"),
    "email": ("email", "email_verified"),
}


class BearerError(Exception):
    """RFC 6750 §3.1: ``error`` is None when no token was presented at all."""

    def __init__(self, status: int, error: str | None, description: str | None = None):
        super().__init__(error)
        self.status, self.error, self.description = status, error, description


def claims_for(user: User, granted: list[str]) -> dict:
    values = {
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "preferred_username": user.username,
        "updated_at": int(user.updated_at.timestamp()) if user.updated_at else None,
        "email": user.email,
        "email_verified": bool(user.email_verified) if user.email else None,
    }
    body = {"sub": user.id}
    for scope in granted:
        for claim in SCOPE_CLAIMS.get(scope, ()):
            if values[claim] is not None:  # §5.3.2: absent rather than null
                body[claim] = values[claim]
    return body


def userinfo(svc: Services, db: Session, token: str | None) -> dict:
    if not token:
        raise BearerError(401, None)
    claims = access_tokens.validate(svc, db, token)
    if claims is None:
        raise BearerError(401, "invalid_token", "the access token is not active")
    granted = scopes.split(claims.get("scope"))
    if "openid" not in granted:
        raise BearerError(403, "insufficient_scope", "the access token lacks openid scope")
    user = db.get(User, claims["sub"])
    if not sessions.user_is_usable(user):  # a client's own token (sub = client_id)
        raise BearerError(401, "invalid_token", "the access token does not name a user")
    return claims_for(user, granted)
