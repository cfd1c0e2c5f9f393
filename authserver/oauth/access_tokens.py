"""JWT access tokens (RFC 9068): issue, and validate for introspection and the admin API.

Access tokens are not stored: they are self-contained and signed by the active key. What can
make a well-signed, unexpired token inactive is checked at validation, each an indexed lookup:
its ``jti`` revoked (RFC 7009), its client deleted/disabled or its tokens revoked since
issuance, its user likewise, its refresh family (``grant_id``) revoked after a reuse.
"""

from __future__ import annotations

import functools
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import Session

from .. import clock
from ..db import Statement, driver_connection
from ..extensions import Services
from ..models.client import Client
from ..models.token_records import RefreshFamily, RevokedToken
from ..models.user import User
from ..verifier import access_tokens as jws
from ..verifier.errors import InvalidToken
from ..verifier.keys import ALGORITHMS

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


_REQUIRED = ("exp", "iat", "jti", "sub", "client_id")


def decode(svc: Services, token: str, verify_exp: bool = True) -> dict | None:
    """Signature, typ, iss and (optionally) exp; None when any fails. The JWS checks are the
    verifier package's (verifier/access_tokens.py, keys.py: strict compact form, strict JSON,
    the key decides the algorithm), over the key set in memory, pending keys included.
    What does not change with time is remembered per token string (``_VERIFIED``); the
    times are checked on every call. Returns a dict of its own (callers may change it)."""
    claims = _VERIFIED.get(svc, token)
    if claims is None:
        claims = _verified(svc, token)
        if claims is None:
            return None
    # Times against our clock (clock.py), not the wall clock.
    now = clock.timestamp()
    if verify_exp and claims["exp"] <= now:
        return None
    if claims["iat"] > now + 5:  # issued in the future: not ours
        return None
    return dict(claims)


def _verified(svc: Services, token: str) -> dict | None:
    """The claims of a token of ours whose signature, header and claim types check out
    (times aside); remembered in ``_VERIFIED`` with the key that verified it."""
    try:
        header_segment, payload_segment, signature = jws.compact_segments(token, 8192)
        header = jws.json_object(header_segment)
        if jws.media_type(header.get("typ")) != TYP:
            return None
        if "crit" in header:  # RFC 7515 §4.1.11: no extensions understood
            return None
        kid = header.get("kid")
        key = svc.keyset.verification_key(kid) if isinstance(kid, str) else None
        if key is None or header.get("alg") != key.alg:
            return None
        signing_input = token[: len(header_segment) + len(payload_segment) + 1].encode()
        if not ALGORITHMS[key.alg].verify(key.public_key, signing_input,
                                          jws.signature_bytes(signature)):
            return None
        claims = jws.json_object(payload_segment)
    except InvalidToken:
        return None
    if claims.get("iss") != svc.settings.issuer or not all(c in claims for c in _REQUIRED):
        return None
    if not all(type(claims[c]) is int for c in ("exp", "iat")):
        return None
    if not all(isinstance(claims[c], str) for c in ("jti", "sub", "client_id")):
        return None
    _VERIFIED.put(token, kid, key, claims)
    return claims


class _VerifiedTokens:
    """Token strings whose signature this process verified recently, with the key object
    that verified them. Resource servers introspect the same bearer token on every call it
    makes, for its whole lifetime; its ES256 verification was the largest single cost of an
    introspection (measured, README). A hit counts only while the key set still maps the
    token's kid to that very key object: any reload of the key set (a rotation, a revoked
    or deleted key, here or on another instance) makes every entry verify again. Only
    exactly the same string hits: a token with another signature is a miss. Revocation,
    expiry and the client's state are checked on every call as before. Bounded: the oldest
    entries go first."""

    MAX_ENTRIES = 4096

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, object, dict]] = {}

    def get(self, svc: Services, token: str) -> dict | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        kid, key, claims = entry
        return claims if svc.keyset.verification_key(kid) is key else None

    def put(self, token: str, kid: str, key, claims: dict) -> None:
        with self._lock:
            while len(self._entries) >= self.MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[token] = (kid, key, claims)


_VERIFIED = _VerifiedTokens()


def _ts(value: datetime | None) -> float | None:
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp() if value else None


_clients, _revoked = Client.__table__, RevokedToken.__table__
_TOKEN_STATE = (  # built once: constructing it cost more than running it (measured)
    select(_clients.c.enabled, _clients.c.deleted_at, _clients.c.tokens_revoked_before,
           select(_revoked.c.jti).where(_revoked.c.jti == bindparam("jti")).exists()
           .label("revoked"))
    .where(_clients.c.client_id == bindparam("client_id")))


def _client_state_allows(state, claims: dict) -> bool:
    """The token's jti is not revoked, and its client exists, is enabled and has not revoked
    its tokens since this one was issued (a _TOKEN_STATE row)."""
    if state is None or state.revoked or not state.enabled or state.deleted_at is not None:
        return False
    cutoff = _ts(state.tokens_revoked_before)
    return cutoff is None or claims["iat"] >= cutoff


def is_client_token(claims: dict) -> bool:
    """A client-credentials token: no user, no refresh family; whether it is active depends
    on its jti and its client only."""
    return claims["sub"] == claims["client_id"] and "grant_id" not in claims


@functools.lru_cache(maxsize=4)
def _token_state(dialect: Dialect) -> Statement:
    return Statement(dialect, _TOKEN_STATE)


def client_token_active(engine: Engine, claims: dict) -> bool:
    """``validate``'s verdict on a decoded client token (``is_client_token``), read fresh in
    one statement on a driver connection (the fast path: no Session, no ORM)."""
    with driver_connection(engine) as driver:
        state = _token_state(engine.dialect).first(
            driver, jti=claims["jti"], client_id=claims["client_id"])
    return _client_state_allows(state, claims)


def validate(svc: Services, session: Session, token: str) -> dict | None:
    """The verified claims of an active access token of this issuer, or None."""
    claims = decode(svc, token)
    if claims is None:
        return None
    # One round trip for the jti's revocation and the client's state, read fresh (not from
    # the client cache: a revocation is in force on every instance at once).
    client = session.connection().execute(
        _TOKEN_STATE, {"jti": claims["jti"], "client_id": claims["client_id"]}).first()
    if not _client_state_allows(client, claims):
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
