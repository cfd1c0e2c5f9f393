"""A client's public keys for private_key_jwt: inline ``jwks`` or a fetched ``jwks_uri``.

Fetching a URL a client registered is a server-side request forgery vector: unless
AUTHSERVER_ALLOW_PRIVATE_JWKS_URI is on, a host that resolves to a loopback, private,
link-local, multicast or reserved address is refused before any connection is made. Responses
are size- and time-bounded and cached per client; an unknown kid refetches at most once per
``REFETCH_SECONDS``.
Known limit: the address is checked at resolution; a DNS answer that changes between the check
and urllib's own resolution (rebinding) is not pinned.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
import urllib.request
from urllib.parse import urlsplit

import jwt

CACHE_SECONDS = 300
REFETCH_SECONDS = 30
MAX_BYTES = 64 * 1024
TIMEOUT = 5


class JwksUnavailable(Exception):
    pass


def _host_is_public(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if not addr.is_global or addr.is_multicast:
            return False
    return bool(infos)


def fetch(uri: str, allow_private: bool) -> dict:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise JwksUnavailable("jwks_uri is not an http(s) URL")
    if not allow_private and not _host_is_public(parts.hostname):
        raise JwksUnavailable("jwks_uri resolves to a non-public address")
    request = urllib.request.Request(uri, headers={"Accept": "application/json"})
    try:
        with _opener(allow_private).open(request, timeout=TIMEOUT) as response:
            body = response.read(MAX_BYTES + 1)
    except OSError as exc:
        raise JwksUnavailable(f"jwks_uri unreachable ({type(exc).__name__})") from None
    if len(body) > MAX_BYTES:
        raise JwksUnavailable("jwks_uri response too large")
    try:
        data = json.loads(body)
    except ValueError:
        raise JwksUnavailable("jwks_uri did not return JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksUnavailable("jwks_uri did not return a JWK set")
    return data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead to an internal address after the check: refuse them."""

    def redirect_request(self, *args, **kwargs):
        return None


def _opener(allow_private: bool):
    if allow_private:
        return urllib.request.build_opener()
    return urllib.request.build_opener(_NoRedirect)


def public_keys(jwks: dict) -> list[jwt.PyJWK]:
    """Parsed public keys; private members or unusable keys are skipped."""
    keys = []
    for jwk in jwks.get("keys", []):
        if not isinstance(jwk, dict) or "d" in jwk or jwk.get("kty") == "oct":
            continue
        try:
            keys.append(jwt.PyJWK(jwk))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    return keys


class ClientJwksCache:
    """Per-process cache of fetched client key sets."""

    def __init__(self, allow_private: bool):
        self._allow_private = allow_private
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, list[jwt.PyJWK]]] = {}

    def keys(self, uri: str, want_kid: str | None) -> list[jwt.PyJWK]:
        now = time.monotonic()
        fetched_at, keys = self._entries.get(uri, (float("-inf"), []))
        stale = now - fetched_at > CACHE_SECONDS
        missing = want_kid is not None and all(k.key_id != want_kid for k in keys)
        if stale or (missing and now - fetched_at > REFETCH_SECONDS):
            with self._lock:
                keys = public_keys(fetch(uri, self._allow_private))
                self._entries[uri] = (now, keys)
        return keys
