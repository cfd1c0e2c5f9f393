"""The authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2) and the consent form.

GET (or a client's POST) starts a request: checked by authorization_request.parse, then the
person signs in if needed (``prompt=login``, ``max_age``), consents if needed, and the browser
returns to the client with a code. The consent form posts back here with ``decision``
(``allow``/``deny``) and a CSRF token. Errors before the redirect URI is trusted are a page.
Every redirect back carries ``iss`` (RFC 9207, advertised in discovery).
"""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from flask import Blueprint, Flask, redirect, request, url_for

from .. import clock, endpoints
from ..db import transaction
from ..extensions import db_session, services
from ..oauth import authorization_code, consent, refresh
from ..oauth.authorization_request import AuthorizationError, UntrustedRedirect, parse
from . import browser

bp = Blueprint("authorize", __name__)
bp.register_error_handler(400, browser.html_http_error)
bp.register_error_handler(413, browser.html_http_error)


def _back_to_client(redirect_uri: str, params: list[tuple[str, str]], status: int = 302):
    params = [*params, ("iss", services().settings.issuer)]
    return browser.no_store(redirect(add_params_to_uri(redirect_uri, params), code=status))


def _error(exc: AuthorizationError, status: int = 302):
    params = [("error", exc.error)]
    if exc.description:
        params.append(("error_description", exc.description))
    if exc.state is not None:
        params.append(("state", exc.state))
    return _back_to_client(exc.redirect_uri, params, status)


def _fail(req, error: str, description: str, status: int = 302):
    return _error(AuthorizationError(error, description, req.redirect_uri, req.state), status)


def _to_login(params):
    """The login page, then back here. ``prompt=login`` and ``max_age`` are dropped from the
    way back: the sign-in that precedes it satisfies them (and keeping them would loop); the
    ID token's auth_time lets the client verify (OIDC Core §3.1.2.1)."""
    again = []
    for name, value in params.items(multi=True):
        if name == "max_age" or name in ("csrf_token", "decision"):
            continue
        if name == "prompt":
            value = " ".join(p for p in value.split() if p != "login")
            if not value:
                continue
        again.append((name, value))
    next_url = endpoints.AUTHORIZATION + "?" + urlencode(again)
    return browser.no_store(redirect(url_for("login.login_form", next=next_url)))


def _issue(req, signed, status: int = 302):
    db, svc = db_session(), services()
    with transaction(db):
        code = authorization_code.issue_code(db, svc, req, signed)
    params = [("code", code)] + ([("state", req.state)] if req.state is not None else [])
    return _back_to_client(req.redirect_uri, params, status)


def _too_old(signed, max_age: int | None) -> bool:
    if max_age is None:
        return False
    return int(clock.timestamp()) - int(signed.auth_time.timestamp()) > max_age


@bp.route(endpoints.AUTHORIZATION, methods=["GET", "POST"])
def authorize():
    params = request.form if request.method == "POST" else request.args
    deciding = request.method == "POST" and "decision" in params
    if deciding and not browser.csrf_ok():
        return browser.error_page(400, "The form has expired or was not sent from this site. "
                                       "Go back to the application and start again.")
    try:
        req = parse(db_session(), params, services().settings.issuer)
    except UntrustedRedirect as exc:
        return browser.error_page(400, exc.description, title="This sign-in link is not valid")
    except AuthorizationError as exc:
        return _error(exc, 303 if request.method == "POST" else 302)
    signed = browser.current_session()
    if deciding:
        return _decide(req, signed, params.get("decision"))
    if signed is None or "login" in req.prompt or _too_old(signed, req.max_age):
        if "none" in req.prompt:
            return _fail(req, "login_required", "the user is not signed in")
        return _to_login(params)
    if consent.needed(db_session(), signed.user, req.client, req.scopes, req.prompt):
        if "none" in req.prompt:
            return _fail(req, "consent_required", "the user has not consented")
        return browser.page(
            "consent.html", client_name=req.client.client_name,
            username=signed.user.username, scopes=consent.describe(req.scopes),
            action=endpoints.AUTHORIZATION, fields=req.form_fields())
    return _issue(req, signed)


def _decide(req, signed, decision: str | None):
    if signed is None:
        return _to_login(request.form)  # signed out meanwhile: sign in, then ask again
    db = db_session()
    if decision == "allow":
        with transaction(db):
            consent.grant(db, signed.user, req.client, req.scopes)
        return _issue(req, signed, status=303)
    if decision == "deny":
        with transaction(db):
            consent.deny(db, signed.user, req.client, req.scopes)
        return _fail(req, "access_denied", "the user denied the request", status=303)
    return browser.error_page(400, "Choose Allow or Deny.")


def register(app: Flask) -> None:
    server = services(app).extra["oauth_server"]
    server.register_grant(authorization_code.AuthorizationCodeGrant)
    server.register_grant(refresh.RefreshTokenGrant)
    app.register_blueprint(bp)
