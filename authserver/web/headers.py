"""Security headers on every response: one after_request hook.

- Everywhere: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` (URLs
  here can carry codes and state; no page needs to tell anyone where it was).
- HSTS when the issuer is https (RFC 6797); never on an http issuer, where it would be ignored
  or, behind a TLS proxy we do not know of, pin the wrong thing.
- HTML: a CSP without inline script or external sources, ``frame-ancestors 'none'`` and
  ``X-Frame-Options: DENY`` (clickjacking of the login and consent buttons). Pages that set a
  stricter policy of their own keep it (web/browser.py leaves out ``form-action``: browsers
  apply it to the redirect after the consent post, which goes to the client's redirect URI).
- ``Cache-Control: no-store`` on the token, introspection, revocation, userinfo and admin
  responses, whatever produced them (RFC 6749 §5.1, RFC 7662 §2.2, OIDC Core §5.3.2): errors
  and 404/405/413/429 answers too.
"""

from __future__ import annotations

from flask import Flask, Response, request

from .. import endpoints
from ..extensions import services

HTML_CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
HSTS = "max-age=31536000"
NO_STORE_PATHS = frozenset({endpoints.TOKEN, endpoints.INTROSPECTION, endpoints.REVOCATION,
                            endpoints.USERINFO})
NO_STORE_PREFIXES = ("/admin/",)


def _no_store(path: str) -> bool:
    return path in NO_STORE_PATHS or path.startswith(NO_STORE_PREFIXES) or path == "/admin"


def _add_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if services().settings.issuer_is_https:
        headers["Strict-Transport-Security"] = HSTS
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", HTML_CSP)
        headers["X-Frame-Options"] = "DENY"
    if _no_store(request.path):
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def register(app: Flask) -> None:
    app.after_request(_add_headers)
