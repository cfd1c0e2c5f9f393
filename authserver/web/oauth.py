"""OAuth endpoints: token, introspection, revocation. Each view: one call, one transaction."""

from __future__ import annotations

from authlib.oauth2.base import OAuth2Error
from flask import Blueprint, Flask, jsonify

from .. import endpoints
from ..db import transaction
from ..extensions import db_session, services
from ..oauth import introspection, revocation
from ..oauth import server as oauth_server
from ..oauth.client_jwks import ClientJwksCache

bp = Blueprint("oauth", __name__)


def _server() -> oauth_server.AuthorizationServer:
    return services().extra["oauth_server"]


@bp.post(endpoints.TOKEN)
def token():
    with transaction(db_session()):  # audit events of refusals are kept too
        return _server().create_token_response()


def _endpoint(action):
    server = _server()
    request = server.create_oauth2_request(None)
    session = db_session()
    with transaction(session):
        try:
            body = action(services(), session, request)
        except OAuth2Error as error:
            return server.handle_error_response(request, error)
    response = jsonify(body) if body is not None else server.handle_response(200, "", [])
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.post(endpoints.INTROSPECTION)
def introspect():
    return _endpoint(introspection.introspect)


@bp.post(endpoints.REVOCATION)
def revoke():
    return _endpoint(revocation.revoke)


def register(app: Flask) -> None:
    svc = services(app)
    svc.extra["oauth_server"] = oauth_server.init()
    svc.extra["client_jwks"] = ClientJwksCache(svc.settings.allow_private_jwks_uri)
    app.register_blueprint(bp)
