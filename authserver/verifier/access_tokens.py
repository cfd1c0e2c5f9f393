"""Verifier: checks RFC 9068 JWT access tokens against the issuer's JWKS, trusting nothing else.

The verify path is kept lean because it runs on every API request: the token's shape is checked
with one regex, the protected header segment is looked up in a small cache (tokens signed by
the same key share it byte for byte), then one signature check, one JSON decode and a few
comparisons. Keys come only from the issuer's discovered `jwks_uri`: the `jku`, `x5u`, `jwk`
and `x5c` headers are never read (RFC 8725 §3.10: a token must not choose its own key).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .checks import TokenChecks, check_audience, check_issuer, check_times
from .discovery import check_url
from .errors import ConfigurationError, InvalidToken
from .jwks_cache import JwksCache
from .keys import ALGORITHMS, Algorithm

MAX_TOKEN_LENGTH = 16 * 1024
MAX_LEEWAY = 10.0
MIN_REFETCH_INTERVAL = 1.0
_HEADER_CACHE_SIZE = 256
# JWS Compact Serialization (RFC 7515 §7.1): three base64url segments, no padding. Anything
# else is refused before decoding, so no lenient base64 decoder can make a token malleable.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def compact_segments(token: Any, max_length: int = MAX_TOKEN_LENGTH) -> tuple[str, str, str]:
    """The header, payload and signature segments of a JWS compact serialisation; anything
    else is InvalidToken (also the authorization server's own token checks)."""
    if type(token) is not str or len(token) > max_length or not _COMPACT_JWS.fullmatch(token):
        raise InvalidToken("malformed token")
    header, payload, signature = token.split(".")
    return header, payload, signature


def signature_bytes(segment: str) -> bytes:
    try:
        return _b64decode(segment)
    except binascii.Error:
        raise InvalidToken("malformed token") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity are not RFC 8259 JSON


_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def json_object(segment: str) -> dict[str, Any]:
    """A base64url segment holding a JSON object (strict JSON), or InvalidToken."""
    try:
        value = _JSON.decode(_b64decode(segment).decode("utf-8"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        raise InvalidToken("malformed token") from None
    if type(value) is not dict:
        raise InvalidToken("malformed token")
    return value


def media_type(typ: Any) -> str | None:
    """A ``typ`` header as a media type without "application/", lower-case; None if no text."""
    # RFC 7515 §4.1.9: "application/" may be omitted; media types compare case-insensitively.
    if not isinstance(typ, str):
        return None
    typ = typ.lower()
    return typ[len("application/"):] if typ.startswith("application/") else typ


class Verifier(TokenChecks):
    """Verifies bearer JWT access tokens for one issuer and one audience (our API)."""

    def __init__(self, issuer: str, audience: str, *,
                 algorithms: Iterable[str] = ("RS256", "ES256"),
                 leeway: float = 5.0,
                 refetch_interval: float = 10.0,
                 typ: str | None = "at+jwt",
                 realm: str = "api",
                 timeout: float = 5.0,
                 min_cache_ttl: float = 60.0,
                 max_cache_ttl: float = 86400.0,
                 default_cache_ttl: float = 300.0,
                 fetch_jwks: Callable[[], Mapping[str, Any]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`typ=None` drops the RFC 9068 type check (only for tokens that are not access
        tokens). `fetch_jwks` replaces discovery + HTTP with a callable returning the JWK set
        (for the authorization server guarding its own admin API); `clock` exists for tests."""
        try:
            check_url(issuer, "issuer")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not isinstance(audience, str) or not audience:
            raise ConfigurationError("audience must be a non-empty string")
        algorithms = tuple(algorithms)
        refused = [a for a in algorithms if a not in ALGORITHMS]
        if refused or not algorithms:
            # "none" and HS* are never allowed (RFC 8725 §3.1, §3.2): a resource server holds
            # no shared secret, and a public key must never double as an HMAC secret.
            raise ConfigurationError(f"algorithms not allowed: {refused or 'empty list'}")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ConfigurationError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        if not refetch_interval >= MIN_REFETCH_INTERVAL:
            raise ConfigurationError(f"refetch_interval must be at least {MIN_REFETCH_INTERVAL:g}s")
        if not 0 < min_cache_ttl <= default_cache_ttl <= max_cache_ttl:
            raise ConfigurationError("need 0 < min_cache_ttl <= default_cache_ttl <= max_cache_ttl")
        if not isinstance(realm, str) or any(c in realm for c in '"\\') or not realm.isprintable():
            raise ConfigurationError("realm must be printable and hold no quote or backslash")
        self.issuer, self.audience, self.realm = issuer, audience, realm
        self.algorithms: dict[str, Algorithm] = {a: ALGORITHMS[a] for a in algorithms}
        self.leeway = float(leeway)
        self.typ = media_type(typ) if typ is not None else None
        self.jwks = JwksCache(issuer, refetch_interval=float(refetch_interval), timeout=timeout,
                              min_ttl=min_cache_ttl, max_ttl=max_cache_ttl,
                              default_ttl=default_cache_ttl, fetch_jwks=fetch_jwks, clock=clock)
        self._clock = clock
        # header segment -> (algorithm, key object, key-set generation it was resolved in)
        self._headers: dict[str, tuple[Algorithm, Any, int]] = {}

    def _verify(self, token: str) -> dict[str, Any]:
        header, payload, signature = compact_segments(token)
        now = self._clock()
        resolved = self._headers.get(header)
        jwks = self.jwks
        if resolved is None or resolved[2] != jwks.generation or now >= jwks.expires_at:
            resolved = self._resolve(header)
        algorithm, key, _ = resolved
        sig = signature_bytes(signature)
        if not algorithm.verify(key, token[: len(header) + len(payload) + 1].encode(), sig):
            raise InvalidToken("invalid signature")
        claims = json_object(payload)
        check_issuer(claims, self.issuer)
        check_audience(claims, self.audience)
        check_times(claims, now, self.leeway)
        return claims

    def _resolve(self, segment: str) -> tuple[Algorithm, Any, int]:
        """Check a protected header and find its key; remember the outcome for this segment."""
        header = json_object(segment)
        alg = header.get("alg")
        algorithm = self.algorithms.get(alg) if isinstance(alg, str) else None
        if algorithm is None:
            raise InvalidToken("algorithm not allowed")
        if self.typ is not None and media_type(header.get("typ")) != self.typ:
            raise InvalidToken("wrong token type")  # RFC 9068 §4: typ must be at+jwt
        if "crit" in header:
            # RFC 7515 §4.1.11: we understand no extensions, so any critical one is fatal.
            raise InvalidToken("unsupported critical header")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing key id")
        generation = self.jwks.generation  # read first: a refresh during get() then re-resolves
        key = self.jwks.get(kid)
        if key is None:
            raise InvalidToken("unknown key")
        if not key.accepts(algorithm):
            # RFC 8725 §3.1: the key decides the algorithm family, never the token.
            raise InvalidToken("key does not match algorithm")
        resolved = (algorithm, key.key, generation)
        if len(self._headers) >= _HEADER_CACHE_SIZE:
            self._headers.clear()  # bounded: forged headers must not grow memory
        self._headers[segment] = resolved
        return resolved
