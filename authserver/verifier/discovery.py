"""Fetching the issuer's metadata (OpenID Connect Discovery 1.0 §4, RFC 8414 §3) over HTTP.

Standard library only (urllib), so resource servers need no HTTP client dependency. Every
fetch is bounded in time and size, follows no redirects (the metadata must name the real
locations; a redirect could move trust elsewhere), and only `https` is accepted, except for
loopback hosts used in development and tests.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

MAX_DOCUMENT_BYTES = 1 << 20  # a JWKS or metadata document is a few KiB; refuse floods


class FetchError(Exception):
    """The document could not be fetched or was not acceptable JSON."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # makes urllib raise HTTPError for the 3xx instead of following it


_OPENER = urllib.request.build_opener(_NoRedirect)


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """`url` if it is an absolute https URL (http only on loopback), else ValueError."""
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname))
    if not secure or not parts.hostname or parts.fragment:
        raise ValueError(f"{what} must be an https URL (http only for loopback hosts)")
    return url


def fetch_json(url: str, *, timeout: float, data: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[Any, str | None]:
    """(parsed JSON body, Cache-Control header) of a 200 answer; FetchError otherwise."""
    req = urllib.request.Request(url, data=data, headers={
        "Accept": "application/json", "User-Agent": "authserver-verifier", **(headers or {})})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            if resp.status != 200:
                raise FetchError(f"HTTP {resp.status}")
            body = resp.read(MAX_DOCUMENT_BYTES + 1)
            cache_control = resp.headers.get("Cache-Control")
    except (OSError, HTTPException, ValueError) as exc:  # URLError/HTTPError are OSErrors
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # an HTTPError holds the open response
        raise FetchError(type(exc).__name__) from exc
    if len(body) > MAX_DOCUMENT_BYTES:
        raise FetchError("document too large")
    try:
        return json.loads(body), cache_control
    except ValueError as exc:
        raise FetchError("invalid JSON") from exc


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may live, in the order they are tried.

    OpenID Connect Discovery §4 appends the well-known path to the issuer; RFC 8414 §3.1
    inserts it between host and path (identical when the issuer has no path).
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return [
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}",
    ]


def discover(issuer: str, *, timeout: float) -> dict[str, Any]:
    """The issuer's metadata, after checking that it names exactly this issuer.

    OIDC Discovery §4.3 and RFC 8414 §3.3 both require the `issuer` member to be identical to
    the issuer the metadata was fetched for; otherwise another server could impersonate it.
    """
    last: FetchError | None = None
    for url in metadata_urls(issuer):
        try:
            doc, _ = fetch_json(url, timeout=timeout)
        except FetchError as exc:
            last = exc
            continue
        if not isinstance(doc, dict) or doc.get("issuer") != issuer:
            raise FetchError("metadata issuer does not match the configured issuer")
        return doc
    raise FetchError(f"no metadata found: {last}")
