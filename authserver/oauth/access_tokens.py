"""JWT access tokens (RFC 9068): issue, and validate for introspection and the admin API.

Access tokens are not stored: they are self-contained and signed by the active key. What can
make a well-signed, unexpired token inactive is checked at validation, each an indexed lookup:
its ``jti`` revoked (RFC 7009), its client deleted/disabled or its tokens revoked since
issuance, its user likewise, its refresh family (``grant_id``) revoked after a reuse.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import clock
from ..extensions import Services
from ..models.client import Client
from ..models.token_records import RefreshFamily, RevokedToken
from ..models.user import User

TYP = "at+jwt"


@dataclass(frozen=True)
class Issued:
    token: str
    claims: dict
    expires_in: int


def lifetime(svc: Services, client: Client) -> int:
    return client.access_token_ttl or svc.settings.access_token_ttl


def issue(svc: Services, client: Client, *, subject: str, scope: str, audience,
          auth_time: int | None = None, grant_id: str | None = None) -> Issued:
    now = int(clock.timestamp())
    ttl = lifetime(svc, client)
    claims = {
        "iss": svc.settings.issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": client.client_id,
        "scope": scope,
    }
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if grant_id is not None:
        claims["grant_id"] = grant_id  # the refresh family: revoked together (RFC 9700 §4.14)
    token = svc.signer.sign(claims, alg=svc.settings.access_token_alg, typ=TYP)
    return Issued(token=token, claims=claims, expires_in=ttl)


def decode(svc: Services, token: str, verify_exp: bool = True) -> dict | None:
    """Signature, typ, iss and (optionally) exp; None when any fails."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    if str(header.get("typ", "")).lower() not in (TYP, "application/" + TYP):
        return None
    key = svc.keyset.verification_key(header.get("kid") or "")
    if key is None or header.get("alg") != key.alg:
        return None
    try:
        claims = jwt.decode(
            token, key.public_key, algorithms=[key.alg], issuer=svc.settings.issuer,
            # Times are checked below against our clock (clock.py), not PyJWT's wall clock.
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False,
                     "verify_nbf": False,
                     "require": ["exp", "iat", "jti", "sub", "client_id"]},
        )
    except jwt.PyJWTError:
        return None
    if not all(isinstance(claims[c], int) for c in ("exp", "iat")):
        return None
    now = clock.timestamp()
    if verify_exp and claims["exp"] <= now:
        return None
    if claims["iat"] > now + 5:  # issued in the future: not ours
        return None
    return claims


def _ts(value: datetime | None) -> float | None:
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp() if value else None


def validate(svc: Services, session: Session, token: str) -> dict | None:
    """The verified claims of an active access token of this issuer, or None."""
    claims = decode(svc, token)
    if claims is None:
        return None
    # One round trip for the jti's revocation and the client's state, read fresh (not from
    # the client cache: a revocation is in force on every instance at once).
    clients, revoked = Client.__table__, RevokedToken.__table__
    client = session.connection().execute(
        select(clients.c.enabled, clients.c.deleted_at, clients.c.tokens_revoked_before,
               select(revoked.c.jti).where(revoked.c.jti == claims["jti"]).exists()
               .label("revoked"))
        .where(clients.c.client_id == claims["client_id"])
    ).first()
    if client is None or client.revoked or not client.enabled or client.deleted_at is not None:
        return None
    cutoff = _ts(client.tokens_revoked_before)
    if cutoff is not None and claims["iat"] < cutoff:
        return None
    if claims["sub"] != claims["client_id"]:
        user = session.get(User, claims["sub"])
        if user is None or not user.enabled or user.deleted_at is not None:
            return None
        cutoff = _ts(user.tokens_revoked_before)
        if cutoff is not None and claims["iat"] < cutoff:
            return None
    grant_id = claims.get("grant_id")
    if grant_id is not None:
        revoked = session.execute(
            select(RefreshFamily.revoked_at).where(RefreshFamily.id == grant_id)
        ).first()
        if revoked is None or revoked[0] is not None:
            return None
    return claims
