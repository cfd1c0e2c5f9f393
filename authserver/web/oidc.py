"""OpenID Connect endpoints: UserInfo (OIDC Core §5.3) and RP-initiated logout."""

from __future__ import annotations

from authlib.common.urls import add_params_to_uri
from flask import Blueprint, Flask, jsonify, redirect, request

from .. import endpoints
from ..extensions import db_session, services
from ..oidc import login as login_service
from ..oidc import logout, sessions, userinfo
from . import browser

bp = Blueprint("oidc", __name__)
bp.register_error_handler(400, browser.html_http_error)


def _bearer_token() -> str | None:
    """RFC 6750 §2.1 header, or §2.2 form body on POST; never the query (§2.3, §5.3)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return request.form.get("access_token") or None
    return None


def _challenge(error: userinfo.BearerError):
    header = 'Bearer realm="authserver"'
    if error.error:
        header += f', error="{error.error}"'
        if error.description:
            header += f', error_description="{error.description}"'
        if error.error == "insufficient_scope":
            header += ', scope="openid"'
    body = {"error": error.error, "error_description": error.description} if error.error \
        else {"error": "invalid_request", "error_description": "bearer token required"}
    response = jsonify(body)
    response.status_code = error.status
    response.headers["WWW-Authenticate"] = header
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route(endpoints.USERINFO, methods=["GET", "POST"])
def userinfo_endpoint():
    try:
        body = userinfo.userinfo(services(), db_session(), _bearer_token())
    except userinfo.BearerError as error:
        return _challenge(error)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- RP-initiated logout ---------------------------------------------------------------------

def _signed_out(req: logout.LogoutRequest):
    if req.post_logout_redirect_uri:
        params = [("state", req.state)] if req.state is not None else []
        response = redirect(add_params_to_uri(req.post_logout_redirect_uri, params), code=303)
    else:
        response = browser.page("message.html", title="Signed out",
                                message="You are signed out. You can close this window.")
    browser.clear_session_cookie(response)
    return browser.no_store(response)


def _end(req: logout.LogoutRequest):
    signed = browser.current_session()
    if signed is not None:
        login_service.sign_out(db_session(), signed.record, reason=sessions.LOGOUT)
        browser.forget_current_session()
        browser.rotate_csrf()
    return _signed_out(req)


@bp.route(endpoints.END_SESSION, methods=["GET", "POST"])
def end_session():
    params = request.form if request.method == "POST" else request.args
    deciding = request.method == "POST" and "decision" in params
    if deciding and not browser.csrf_ok():
        return browser.error_page(400, "The form has expired or was not sent from this site. "
                                       "Reload the page and try again.")
    try:
        req = logout.parse(services(), db_session(), params)
    except logout.InvalidLogoutRequest as exc:
        return browser.error_page(400, exc.description, title="This sign-out link is not valid")
    signed = browser.current_session()
    if deciding:
        if params.get("decision") == "logout":
            return _end(req)
        return browser.page("message.html", title="Still signed in",
                            message="You are still signed in.")
    if logout.needs_confirmation(req, signed):
        return browser.page(
            "logout.html", username=signed.user.username,
            client_name=req.client.client_name if req.client else None,
            action=endpoints.END_SESSION, fields=req.form_fields())
    return _end(req)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
