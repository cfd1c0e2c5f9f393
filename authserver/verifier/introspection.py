"""IntrospectionVerifier: asks the issuer about each token (RFC 7662) instead of checking a JWT.

For APIs that must see a revocation at once. Same interface as Verifier (verify(), realm, use
with require_scope). A token reported inactive is refused immediately; only active answers are
cached, for a few seconds, keyed by the token's SHA-256 so the cache holds no bearer tokens.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus, urlencode

from .checks import TokenChecks, check_audience, check_issuer, check_times
from .discovery import FetchError, check_url, discover, fetch_json
from .errors import ConfigurationError, IntrospectionUnavailable, InvalidToken

MAX_CACHE_TTL = 60.0
_CACHE_SIZE = 10_000
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1 b64token
# RFC 7662 §2.2 token_type follows RFC 6749 §5.1 ("Bearer"); refresh tokens must not pass.
_ACCESS_TOKEN_TYPES = {"bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token"}


class IntrospectionVerifier(TokenChecks):
    def __init__(self, issuer: str, audience: str, *, client_id: str, client_secret: str,
                 introspection_endpoint: str | None = None, cache_ttl: float = 5.0,
                 leeway: float = 5.0, realm: str = "api", timeout: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        try:
            check_url(issuer, "issuer")
            if introspection_endpoint is not None:
                check_url(introspection_endpoint, "introspection_endpoint")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not 0 <= cache_ttl <= MAX_CACHE_TTL:
            raise ConfigurationError(f"cache_ttl must be between 0 and {MAX_CACHE_TTL:g}s")
        if not 0 <= leeway <= 10:
            raise ConfigurationError("leeway must be between 0 and 10 seconds")
        if not audience or not client_id or not client_secret:
            raise ConfigurationError("audience, client_id and client_secret are required")
        self.issuer, self.audience, self.realm = issuer, audience, realm
        self.endpoint = introspection_endpoint
        self.cache_ttl, self.leeway, self.timeout = cache_ttl, leeway, timeout
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
        pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
        self._authorization = "Basic " + base64.b64encode(pair).decode()
        self._clock = clock
        self._cache: dict[bytes, tuple[float, dict[str, Any]]] = {}
        self._discovery_lock = threading.Lock()

    def _verify(self, token: str) -> dict[str, Any]:
        if type(token) is not str or len(token) > 16 * 1024 or not _B64TOKEN.fullmatch(token):
            raise InvalidToken("malformed token")
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        if cached is not None and now < cached[0]:
            return dict(cached[1])
        claims = self._introspect(token)
        if claims.get("active") is not True:  # RFC 7662 §2.2: anything else means inactive
            self._cache.pop(digest, None)
            raise InvalidToken("token inactive")
        token_type = claims.get("token_type")
        if token_type is not None and str(token_type).lower() not in _ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token")
        # The endpoint is authoritative, but the answer must still be for us (RFC 7662 §4).
        if "iss" in claims:
            check_issuer(claims, self.issuer)
        check_audience(claims, self.audience)
        check_times(claims, now, self.leeway, required=False)
        if self.cache_ttl > 0:
            self._remember(digest, claims, now)
        return claims

    def _remember(self, digest: bytes, claims: dict[str, Any], now: float) -> None:
        until = now + self.cache_ttl
        exp = claims.get("exp")
        if type(exp) in (int, float):
            until = min(until, exp)  # never serve a token from cache past its expiry
        if len(self._cache) >= _CACHE_SIZE:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= _CACHE_SIZE:
                self._cache = {}
        self._cache[digest] = (until, dict(claims))

    def _introspect(self, token: str) -> dict[str, Any]:
        body = urlencode({"token": token, "token_type_hint": "access_token"}).encode()
        try:
            answer, _ = fetch_json(self._endpoint(), timeout=self.timeout, data=body, headers={
                "Authorization": self._authorization,
                "Content-Type": "application/x-www-form-urlencoded",
            })
        except FetchError:
            raise IntrospectionUnavailable("introspection failed") from None
        if not isinstance(answer, dict):
            raise IntrospectionUnavailable("introspection failed")
        return answer

    def _endpoint(self) -> str:
        if self.endpoint is None:
            with self._discovery_lock:
                if self.endpoint is None:
                    uri = discover(self.issuer, timeout=self.timeout).get(
                        "introspection_endpoint")
                    try:
                        self.endpoint = check_url(uri if isinstance(uri, str) else "",
                                                  "introspection_endpoint")
                    except ValueError as exc:
                        raise FetchError(str(exc)) from None
        return self.endpoint
