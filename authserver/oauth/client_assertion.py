"""private_key_jwt client authentication (RFC 7523 §2.2 and §3, OIDC Core §9).

The assertion is a JWT signed with a key from the client's registered ``jwks``/``jwks_uri``;
``iss`` and ``sub`` are the client id; ``aud`` is the issuer or the endpoint's URL; ``exp`` is
required and short; ``jti`` is accepted once (stored until ``exp``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import clock
from ..models.client import Client
from ..models.token_records import UsedClientAssertion
from .client_jwks import ClientJwksCache, JwksUnavailable, public_keys

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
MAX_LIFETIME = 600  # an assertion may not be valid for longer than this (bounds the jti store)
LEEWAY = 30


class AssertionError_(Exception):
    """The assertion does not authenticate the client; the message is safe to return."""


def unverified_client_id(assertion: str) -> str | None:
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub == claims.get("iss") else None


def verify(session: Session, client: Client, assertion: str, audiences: list[str],
           jwks_cache: ClientJwksCache) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise AssertionError_("malformed client assertion") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise AssertionError_("client assertion algorithm not allowed")
    try:
        if client.jwks:
            keys = public_keys(json.loads(client.jwks))
        elif client.jwks_uri:
            keys = jwks_cache.keys(client.jwks_uri, kid)
        else:
            keys = []
    except JwksUnavailable as exc:
        raise AssertionError_(str(exc)) from None
    candidates = [k for k in keys if kid is None or k.key_id == kid]
    claims = None
    for key in candidates:
        try:
            claims = jwt.decode(
                assertion, key.key, algorithms=[alg], audience=audiences,
                issuer=client.client_id, leeway=LEEWAY,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise AssertionError_(f"client assertion rejected: {_reason(exc)}") from None
    if claims is None:
        raise AssertionError_("client assertion signature does not verify")
    if claims["sub"] != client.client_id:
        raise AssertionError_("client assertion sub must be the client id")
    now = clock.timestamp()
    if claims["exp"] - now > MAX_LIFETIME:
        raise AssertionError_("client assertion lives too long")
    if not isinstance(claims["jti"], str) or not 1 <= len(claims["jti"]) <= 255:
        raise AssertionError_("client assertion jti invalid")
    _consume_jti(session, client.client_id, claims["jti"], claims["exp"])


def _reason(exc: jwt.PyJWTError) -> str:
    return {
        jwt.ExpiredSignatureError: "expired",
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.ImmatureSignatureError: "not yet valid",
        jwt.MissingRequiredClaimError: "missing claim",
    }.get(type(exc), "invalid")


def _consume_jti(session: Session, client_id: str, jti: str, exp: int) -> None:
    """Insert the jti in its own transaction: a second use hits the primary key."""
    expires = datetime.fromtimestamp(exp + LEEWAY, UTC)
    try:
        with session.begin_nested():
            session.add(UsedClientAssertion(client_id=client_id, jti=jti, expires_at=expires))
            session.flush()
    except IntegrityError:
        raise AssertionError_("client assertion replayed") from None
