"""Token introspection (RFC 7662).

The caller must authenticate as a client (public clients cannot: §2.1). Any authenticated
client may introspect access tokens (resource servers are clients); a refresh token is only
reported active to the client it was issued to (§4, privacy). Anything unknown, expired,
revoked or malformed is ``{"active": false}`` (§2.2).
"""

from __future__ import annotations

from datetime import UTC

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from sqlalchemy.orm import Session

from .. import clock, endpoints
from ..extensions import Services
from ..models.client import Client
from ..models.token_records import RefreshFamily, RefreshToken
from . import access_tokens, client_auth

INACTIVE = {"active": False}
REFRESH_PURPOSE = "refresh_token"


def introspect(svc: Services, session: Session, request) -> dict:
    client = client_auth.authenticate(svc, session, request,
                                      svc.settings.issuer + endpoints.INTROSPECTION,
                                      allow_public=False)
    token = request.form.get("token")
    if not token:
        raise InvalidRequestError("missing token parameter")
    hint = request.form.get("token_type_hint")
    lookups = [access_token, _refresh_token]
    if hint == "refresh_token":
        lookups.reverse()
    for lookup in lookups:
        result = lookup(svc, session, token, client)
        if result is not None:
            return result
    return INACTIVE


def access_token(svc, session, token, client=None) -> dict | None:
    """The answer for an active access token of ours, or None (also fast_path.py)."""
    claims = access_tokens.validate(svc, session, token)
    return None if claims is None else active_body(claims)


def active_body(claims: dict) -> dict:
    """RFC 7662's answer for an active access token with these verified claims."""
    body = {"active": True, "token_type": "Bearer"}
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti",
                 "auth_time"):
        if name in claims:
            body[name] = claims[name]
    return body


def _refresh_token(svc, session, token, client: Client) -> dict | None:
    if len(token) > 512 or "." in token:
        return None
    row = session.get(RefreshToken, svc.digester.digest(token, REFRESH_PURPOSE))
    if row is None:
        return None
    family = session.get(RefreshFamily, row.family_id)
    now = clock.now()
    if (family is None or family.client_id != client.client_id or family.revoked_at
            or row.used_at or row.expires_at <= now):
        return INACTIVE
    owner = session.get(Client, family.client_id)
    if owner is None or not owner.active:
        return INACTIVE
    return {
        "active": True, "token_type": "refresh_token", "client_id": family.client_id,
        "sub": family.user_id, "scope": row.scope, "iss": svc.settings.issuer,
        "exp": int(row.expires_at.astimezone(UTC).timestamp()),
        "iat": int(row.created_at.astimezone(UTC).timestamp()),
    }
