"""The sign-in page. Thin: parse the form, call oidc/login.py, shape the page.

Only the authorization endpoint sends people here (``next`` is a relative URL of it, checked by
``safe_next``); after a sign-in the browser goes back there, which decides about consent.
The page always shows the form, even with a live session: the authorization endpoint sends
people here for ``prompt=login`` and ``max_age`` too, where the old session must not do.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import Blueprint, Flask, redirect, request

from .. import ratelimit
from ..extensions import db_session, services
from ..models import Client
from ..oidc import login as login_service
from . import browser

bp = Blueprint("login", __name__)
bp.register_error_handler(400, browser.html_http_error)
bp.register_error_handler(413, browser.html_http_error)

# One message for an unknown user, a wrong password and a disabled account: no oracle.
FAILED = "The username or password is not correct."


def rate_limit_login(username: str | None) -> None:
    """The hook for the login rate limiter (CONTRACT §2: AUTHSERVER_RATELIMIT_LOGIN per
    username+IP, AUTHSERVER_RATELIMIT_LOGIN_IP per IP). Called on every login post before
    anything is checked, with ``username=None`` when the post failed the CSRF check (such
    posts count against the IP only). Raises ratelimit.RateLimited: a 429 page with
    Retry-After."""
    ratelimit.check_login(username)


def _form_context(next_url: str | None) -> dict:
    """Who asks (client name) and the login_hint, read from the authorization request."""
    if not next_url:
        return {}
    query = parse_qs(urlsplit(next_url).query)
    context = {}
    hint = (query.get("login_hint") or [""])[0]
    if hint and len(hint) <= login_service.MAX_USERNAME:
        context["username"] = hint
    client_id = (query.get("client_id") or [""])[0]
    if client_id and len(client_id) <= 64 and "\x00" not in client_id:  # PostgreSQL: no NUL
        client = db_session().get(Client, client_id)
        if client is not None and client.active:
            context["client_name"] = client.client_name
    return context


@bp.get("/login")
def login_form():
    next_url = browser.safe_next(request.args.get("next"))
    return browser.page("login.html", next=next_url, **_form_context(next_url))


@bp.post("/login")
def login():
    next_url = browser.safe_next(request.form.get("next"))
    if not browser.csrf_ok():
        rate_limit_login(None)
        return browser.error_page(400, "The form has expired or was not sent from this site. "
                                       "Go back, reload the page and try again.")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    rate_limit_login(username)
    svc = services()
    current = browser.current_session()
    result = login_service.attempt(
        db_session(), svc.digester, svc.settings, username=username, password=password,
        ip=request.remote_addr, previous=current.record if current else None,
    )
    if result is None:
        ratelimit.login_failed(username)  # only failures count against (username, IP)
        context = {**_form_context(next_url), "username": username[:150]}
        return browser.page("login.html", status=200, next=next_url, error=FAILED, **context)
    browser.rotate_csrf()
    browser.forget_current_session()
    if next_url:
        response = redirect(next_url, code=303)
    else:
        response = browser.page("message.html", title="Signed in",
                                message=f"You are signed in as {result.user.username}.")
    browser.set_session_cookie(response, result.cookie_value)
    return browser.no_store(response)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
