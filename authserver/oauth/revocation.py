"""Token revocation (RFC 7009).

A client may revoke only its own tokens; another's, unknown or malformed ones are ignored with
200 (§2.2: the response does not reveal which). A revoked access token's ``jti`` is remembered
until the token would have expired. Revoking a refresh token revokes its whole family and the
access tokens issued from it (§2.1 SHOULD).
"""

from __future__ import annotations

from datetime import UTC, datetime

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from sqlalchemy.orm import Session

from .. import audit, clock, endpoints
from ..extensions import Services
from ..models.token_records import RefreshFamily, RefreshToken, RevokedToken
from . import access_tokens, client_auth
from .introspection import REFRESH_PURPOSE


def revoke(svc: Services, session: Session, request) -> None:
    client = client_auth.authenticate(svc, session, request,
                                      svc.settings.issuer + endpoints.REVOCATION)
    token = request.form.get("token")
    if not token:
        raise InvalidRequestError("missing token parameter")
    if not _revoke_access_token(svc, session, token, client.client_id):
        _revoke_refresh_token(svc, session, token, client.client_id)


def _revoke_access_token(svc, session, token: str, client_id: str) -> bool:
    claims = access_tokens.decode(svc, token, verify_exp=False)
    if claims is None:
        return False
    if claims["client_id"] != client_id:
        return True  # recognised, not the caller's: ignored
    if claims["exp"] > clock.timestamp() and session.get(RevokedToken, claims["jti"]) is None:
        session.add(RevokedToken(jti=claims["jti"], client_id=client_id, revoked_at=clock.now(),
                                 expires_at=datetime.fromtimestamp(claims["exp"], UTC)))
        audit.record(session, "token.revoked", actor=f"client:{client_id}",
                     client_id=client_id, details={"jti": claims["jti"],
                                                   "token_type": "access_token"})
    return True


def _revoke_refresh_token(svc, session, token: str, client_id: str) -> None:
    if len(token) > 512:
        return
    row = session.get(RefreshToken, svc.digester.digest(token, REFRESH_PURPOSE))
    family = session.get(RefreshFamily, row.family_id) if row else None
    if family is None or family.client_id != client_id or family.revoked_at is not None:
        return
    family.revoked_at, family.revoke_reason = clock.now(), "revoked_by_client"
    audit.record(session, "token.revoked", actor=f"client:{client_id}", client_id=client_id,
                 details={"grant_id": family.id, "token_type": "refresh_token"})
