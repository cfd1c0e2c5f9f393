"""The issuer's public keys, fetched from its `jwks_uri` and cached.

Keys are parsed once per fetch into a dict that is swapped atomically, so the verify path reads
it without a lock. Fetches are rate-limited by one lock and one timestamp: however many threads
present unknown `kid`s, at most one fetch happens per `refetch_interval`. When the issuer is
unreachable the keys already held stay in use (an unknown `kid` then simply fails).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .discovery import FetchError, check_url, discover, fetch_json
from .keys import PublicKey, parse_jwks

log = logging.getLogger(__name__)

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\b", re.IGNORECASE)


def cache_lifetime(cache_control: str | None, default: float, lo: float, hi: float) -> float:
    """Seconds to keep a JWKS: its Cache-Control max-age (RFC 9111 §5.2.2.1) within [lo, hi].

    The lower bound stops an issuer (or a misconfigured proxy) from making every verify a
    fetch; the upper bound lets a rotation reach us even when max-age is huge. no-cache and
    no-store map to the lower bound: the keys are still needed to verify anything.
    """
    if not cache_control:
        return default
    if _NO_CACHE.search(cache_control):
        return lo
    match = _MAX_AGE.search(cache_control)
    return min(max(float(match.group(1)), lo), hi) if match else default


class JwksCache:
    """kid -> PublicKey for one issuer, refreshed on expiry and (rate-limited) on unknown kids."""

    def __init__(self, issuer: str, *, refetch_interval: float, timeout: float,
                 min_ttl: float, max_ttl: float, default_ttl: float,
                 fetch_jwks: Callable[[], Mapping[str, Any]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self.ttl_bounds = (default_ttl, min_ttl, max_ttl)
        self._fetch_jwks = fetch_jwks
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str, PublicKey] = {}
        self.expires_at = float("-inf")  # keys are stale from then on
        self._last_attempt = float("-inf")  # last fetch attempt, successful or not
        self.fetch_count = 0  # attempts, for operators' metrics and the rate-limit tests
        self.generation = 0  # bumped whenever the key set is replaced

    @property
    def keys(self) -> dict[str, PublicKey]:
        return self._keys

    def get(self, kid: str) -> PublicKey | None:
        """The key for `kid`, fetching the JWKS if it is unknown or stale (rate-limited)."""
        key = self._keys.get(kid)
        if key is not None:
            if self._clock() >= self.expires_at:
                # Stale: one thread refreshes, the others keep verifying with what they have.
                self._refresh(wait=False)
                return self._keys.get(kid)
            return key
        # Unknown kid (RFC 7517 §4.5): maybe a key published since our last fetch. Waiting
        # on the lock lets a concurrent fetch finish, so a new key is seen by every thread.
        self._refresh(wait=True)
        return self._keys.get(kid)

    def refresh(self) -> bool:
        """Fetch now unless a fetch was attempted within the refetch interval (e.g. to warm
        the cache when a resource server starts)."""
        return self._refresh(wait=True)

    def _refresh(self, *, wait: bool) -> bool:
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            now = self._clock()
            if now - self._last_attempt < self.refetch_interval:
                return False
            self._last_attempt = now
            self.fetch_count += 1
            try:
                document, cache_control = self._fetch()
                keys = parse_jwks(document)
            except (FetchError, ValueError) as exc:
                # Keep the keys we have: an outage must not turn valid tokens away.
                log.warning("JWKS refresh for %s failed (%s); keeping %d cached keys",
                            self.issuer, exc, len(self._keys))
                return False
            self._keys = keys
            self.expires_at = now + cache_lifetime(cache_control, *self.ttl_bounds)
            self.generation += 1
            return True
        finally:
            self._lock.release()

    def _fetch(self) -> tuple[Any, str | None]:
        if self._fetch_jwks is not None:
            return self._fetch_jwks(), None
        if self._jwks_uri is None:
            uri = discover(self.issuer, timeout=self.timeout).get("jwks_uri")
            try:
                self._jwks_uri = check_url(uri if isinstance(uri, str) else "", "jwks_uri")
            except ValueError as exc:
                raise FetchError(str(exc)) from exc
        return fetch_json(self._jwks_uri, timeout=self.timeout)
