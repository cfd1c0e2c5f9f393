"""What the browser pages share: the session cookie, CSRF, and the HTML error page.

Every cookie is HttpOnly, SameSite=Lax and Secure when the issuer is https (CONTRACT §4).
Lax (not Strict) because the authorization request arrives as a top-level cross-site
navigation from the client app and must see the session.

CSRF uses Flask-WTF's token functions (signed token in the form, its secret in Flask's signed
session cookie) on our forms only, not CSRFProtect: a global CSRFProtect would also guard the
token, introspection and admin endpoints, whose callers are not browsers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, g, render_template, request
from flask_wtf.csrf import ValidationError, generate_csrf, validate_csrf
from werkzeug.exceptions import HTTPException

from .. import endpoints
from ..extensions import db_session, services
from ..oidc import sessions

CSRF_FIELD = "csrf_token"


def current_session() -> sessions.SignedIn | None:
    """The live browser session of this request (looked up once per request)."""
    if "_browser_session" not in g:
        svc = services()
        g._browser_session = sessions.load(
            db_session(), svc.digester, request.cookies.get(sessions.COOKIE_NAME)
        )
    return g._browser_session


def forget_current_session() -> None:
    g._browser_session = None


def set_session_cookie(response: Response, value: str) -> None:
    settings = services().settings
    response.set_cookie(
        sessions.COOKIE_NAME, value, max_age=settings.session_ttl, path="/",
        httponly=True, samesite="Lax", secure=settings.issuer_is_https,
    )


def clear_session_cookie(response: Response) -> None:
    settings = services().settings
    response.delete_cookie(
        sessions.COOKIE_NAME, path="/", httponly=True, samesite="Lax",
        secure=settings.issuer_is_https,
    )


def csrf_token() -> str:
    return generate_csrf()


def csrf_ok() -> bool:
    """True when the posted form carries the CSRF token of this browser."""
    try:
        validate_csrf(request.form.get(CSRF_FIELD))
    except ValidationError:
        return False
    return True


def rotate_csrf() -> None:
    """A new CSRF secret after sign-in and sign-out (no token survives a change of user)."""
    from flask import session

    session.pop(CSRF_FIELD, None)
    g.pop(CSRF_FIELD, None)


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a relative URL of our authorization endpoint, else None.
    Nothing else is followed after sign-in, so the login page is no open redirect."""
    if not target or "\\" in target or any(ord(c) < 0x20 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path != endpoints.AUTHORIZATION:
        return None
    return target


def no_store(response: Response) -> Response:
    # Pages with CSRF tokens or personal data must not be cached (RFC 9111 §5.2.2.5).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    # Nothing here is meant to be framed (clickjacking of the consent button). No form-action:
    # Chrome applies it to the redirect after the consent post, which goes to the client's
    # redirect URI (any scheme).
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def page(template: str, status: int = 200, **context) -> Response:
    response = Response(render_template(template, csrf_token=csrf_token, **context),
                        status=status, mimetype="text/html")
    return no_store(response)


_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request too large",
}


def error_page(status: int, message: str, title: str | None = None) -> Response:
    """The page shown when nothing may be redirected (no trusted redirect URI yet)."""
    return page("error.html", status=status, title=title or _TITLES.get(status, "Error"),
                message=message)


def html_http_error(exc: HTTPException) -> Response:
    """Blueprint error handler: HTTP errors on pages are pages, not JSON."""
    status = exc.code or 500
    if status >= 500:
        raise exc
    return error_page(status, "The request could not be processed.")
