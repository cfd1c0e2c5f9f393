"""Refresh tokens: opaque, digest at rest, rotated on every use, families revoked on reuse.

RFC 9700 §4.14.2: a refresh token used twice means one copy was stolen, and the server cannot
tell which holder is honest, so the whole family (every token descended from one code
exchange) is revoked, and with it the access tokens issued from it: they carry the family id
as ``grant_id`` and access_tokens.validate refuses them once ``revoked_at`` is set.
Authlib's RefreshTokenGrant does not rotate by default and saves the new token before revoking
the old one (ARCHITECTURE, Authlib gap 4): the old token is consumed first, by one conditional
UPDATE, so of two concurrent uses exactly one wins and the other is a reuse.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import audit, clock
from ..extensions import Services
from ..models import Client, RefreshFamily, RefreshToken, User
from ..oidc import sessions
from ..security import tokens
from . import families, scopes
from .introspection import REFRESH_PURPOSE
from .token_response import user_tokens


def lifetime(svc: Services, client: Client) -> int:
    return client.refresh_token_ttl or svc.settings.refresh_token_ttl


def start_family(db: Session, client: Client, user: User, *, scope: str, audience: str | None,
                 auth_time: datetime, sid: str | None) -> RefreshFamily:
    family = RefreshFamily(id=secrets.token_urlsafe(24), client_id=client.client_id,
                           user_id=user.id, scope=scope, audience=audience,
                           auth_time=auth_time, session_sid=sid, created_at=clock.now())
    db.add(family)
    return family


def issue(db: Session, svc: Services, client: Client, family: RefreshFamily,
          scope: str) -> str:
    value = tokens.generate()
    now = clock.now()
    db.add(RefreshToken(token_digest=svc.digester.digest(value, REFRESH_PURPOSE),
                        family_id=family.id, scope=scope, created_at=now,
                        expires_at=now + timedelta(seconds=lifetime(svc, client))))
    return value


def _load(db: Session, digest: str) -> tuple[RefreshToken | None, RefreshFamily | None,
                                             User | None]:
    """The token, its family and the family's user, in one round trip (the fewest per
    request: README, Performance); (None, None, None) for an unknown digest."""
    found = db.execute(
        select(RefreshToken, RefreshFamily, User)
        .join(RefreshFamily, RefreshFamily.id == RefreshToken.family_id)
        .outerjoin(User, User.id == RefreshFamily.user_id)
        .where(RefreshToken.token_digest == digest)
    ).first()
    return tuple(found) if found is not None else (None, None, None)


def _consume(db: Session, row: RefreshToken) -> bool:
    result = db.execute(
        update(RefreshToken)
        .where(RefreshToken.token_digest == row.token_digest, RefreshToken.used_at.is_(None))
        .values(used_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post",
                                   "private_key_jwt", "none"]

    def validate_token_request(self):
        svc, db = self.server.services, self.server.db_session()
        client = self.authenticate_token_endpoint_client()
        if "refresh_token" not in client.get_list("grant_types"):
            raise UnauthorizedClientError("the client may not use refresh tokens")
        value = self.request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("missing refresh_token")
        row, family, user = _load(db, svc.digester.digest(value, REFRESH_PURPOSE)) \
            if len(value) <= 512 else (None, None, None)
        if family is None or family.client_id != client.client_id:
            raise InvalidGrantError("unknown refresh token")
        if family.revoked_at is not None:
            raise InvalidGrantError("refresh token revoked")
        if row.expires_at <= clock.now():
            raise InvalidGrantError("refresh token expired")
        if not _consume(db, row):
            # RFC 9700 §4.14.2: a spent token came back. Revoke the family; this answer and
            # the revocation commit together (the token view commits on OAuth errors too).
            families.revoke(db, RefreshFamily.id == family.id, reason="reuse_detected")
            audit.record(db, "refresh_token.reuse_detected", actor=f"client:{client.client_id}",
                         client_id=client.client_id, outcome="failure",
                         details={"grant_id": family.id, "user": family.user_id})
            raise InvalidGrantError("refresh token already used")
        if not sessions.user_is_usable(user) or (
                user.tokens_revoked_before and family.created_at < user.tokens_revoked_before):
            raise InvalidGrantError("the user's grant is no longer valid")
        # RFC 6749 §6: the original scope or a subset; the rotated refresh token keeps it all.
        self.request.scope = scopes.narrow_scope(row.scope, self.request.payload.scope)
        self.request.client, self.request.user = client, user
        self.request.refresh_token = row
        self.family = family

    def create_token_response(self):
        # Ours, not Authlib's: it logs tokens at DEBUG and saves before revoking (gap 1, 4).
        svc, db = self.server.services, self.server.db_session()
        client, user, family = self.request.client, self.request.user, self.family
        new_refresh = issue(db, svc, client, family, self.request.refresh_token.scope)
        body, issued = user_tokens(
            svc, client, user, scope=self.request.scope, audience=family.audience,
            auth_time=family.auth_time, sid=family.session_sid, grant_id=family.id)
        body["refresh_token"] = new_refresh
        audit.record(db, "token.issued", actor=f"user:{user.id}", client_id=client.client_id,
                     details={"grant_type": "refresh_token", "jti": issued.claims["jti"],
                              "grant_id": family.id, "scope": self.request.scope})
        return 200, body, self.TOKEN_RESPONSE_HEADER
