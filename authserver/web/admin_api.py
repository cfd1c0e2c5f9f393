"""The admin API (CONTRACT §5): a separate surface with its own guard and error shape.

Guard: a bearer access token of this issuer (oauth/access_tokens.validate: signature, typ,
iss, exp, revocation, client still active) whose ``aud`` is exactly the issuer and whose scope
holds ``admin``. A token for another audience is refused even if it also names the issuer, so
a resource server that received a token cannot replay it here. Errors per RFC 6750 §3.1;
every response is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, Flask, Response, g, jsonify, request

from .. import audit, endpoints
from ..admin import audit_queries, clients, keys, openapi, schemas, users
from ..db import transaction
from ..errors import json_error
from ..extensions import db_session, services
from ..oauth import access_tokens

bp = Blueprint("admin_api", __name__, url_prefix="/admin")

REALM = "authserver-admin"
ADMIN_SCOPE = "admin"
MAX_LIMIT, DEFAULT_LIMIT = 200, 50
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PUBLIC_ENDPOINTS = frozenset({"admin_api.openapi_document"})


def register(app: Flask) -> None:
    app.register_blueprint(bp)


# -- errors -------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str | None = None,
                 headers: dict | None = None):
        super().__init__(error)
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return json_error(exc.status, exc.error, exc.description, exc.headers)


@bp.errorhandler(schemas.MetadataError)
def _metadata_error(exc: schemas.MetadataError) -> Response:
    return json_error(400, exc.error, exc.description)


@bp.errorhandler(users.UserInvalid)
def _user_invalid(exc: users.UserInvalid) -> Response:
    return json_error(400, "invalid_request", str(exc))


@bp.errorhandler(users.UserExists)
def _user_exists(_exc) -> Response:
    return json_error(409, "conflict", "username is taken")


@bp.errorhandler(clients.ClientNotFound)
@bp.errorhandler(users.UserNotFound)
def _not_found(_exc) -> Response:
    return json_error(404, "not_found", "no such resource")


@bp.errorhandler(clients.InvalidCursor)
def _bad_cursor(_exc) -> Response:
    return json_error(400, "invalid_request", "cursor is invalid")


@bp.errorhandler(audit_queries.InvalidFilter)
def _bad_filter(exc) -> Response:
    return json_error(400, "invalid_request", str(exc))


@bp.errorhandler(clients.NoSecret)
def _no_secret(_exc) -> Response:
    return json_error(400, "invalid_request", "this client does not authenticate with a secret")


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


# -- guard --------------------------------------------------------------------------------

def _challenge(error: str | None = None, description: str | None = None) -> dict:
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    if error == "insufficient_scope":
        value += f', scope="{ADMIN_SCOPE}"'
    return {"WWW-Authenticate": value}


def _refuse(reason: str, client_id: str | None = None) -> None:
    """Audit a refused token (never its value) in a transaction of its own."""
    session = db_session()
    actor = f"client:{client_id}" if client_id else "system"
    with transaction(session):
        audit.record(session, "admin.auth_failed", actor=actor, outcome="failure",
                     client_id=client_id, details={"reason": reason, "path": request.path})


@bp.before_request
def _guard():
    if request.endpoint in _PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        # RFC 6750 §3.1: no authentication presented: a challenge without an error code.
        if header and scheme.lower() == "bearer":
            _refuse("malformed")
            raise ApiError(401, "invalid_token", "the access token is malformed",
                           _challenge("invalid_token"))
        raise ApiError(401, "invalid_token", "a bearer access token is required", _challenge())
    svc = services()
    claims = access_tokens.validate(svc, db_session(), token)
    if claims is None:
        _refuse("invalid_token")
        raise ApiError(401, "invalid_token", "the access token is invalid",
                       _challenge("invalid_token"))
    client_id = claims["client_id"]
    aud = claims.get("aud")
    if aud != svc.settings.issuer and aud != [svc.settings.issuer]:
        _refuse("wrong_audience", client_id)
        raise ApiError(401, "invalid_token", "the access token is not for this API",
                       _challenge("invalid_token"))
    scope = claims.get("scope")
    if not isinstance(scope, str) or ADMIN_SCOPE not in scope.split(" "):
        _refuse("insufficient_scope", client_id)
        raise ApiError(403, "insufficient_scope", "the admin scope is required",
                       _challenge("insufficient_scope"))
    g.admin_actor = f"client:{client_id}"
    return None


# -- request parsing ----------------------------------------------------------------------

def _reject_duplicates(pairs):
    keys_seen = [k for k, _ in pairs]
    if len(set(keys_seen)) != len(keys_seen):
        raise ValueError("duplicate member")
    return dict(pairs)


def _reject_constant(_name):
    raise ValueError("not JSON")


def _json_body(error: str, optional: bool = False):
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH applies: 413 when larger
    if not raw:
        if optional:
            return {}
        raise ApiError(400, error, "the body must be a JSON object")
    if request.mimetype != "application/json":
        raise ApiError(415, "invalid_request", "the body must be application/json")
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                          parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, error, "the body is not valid JSON") from None


def _query(*allowed: str) -> None:
    """Strict query strings: unknown or repeated parameters are refused, not ignored."""
    for name in request.args:
        if name not in allowed:
            raise ApiError(400, "invalid_request", "unknown query parameter")
        if len(request.args.getlist(name)) > 1:
            raise ApiError(400, "invalid_request", "repeated query parameter")


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "invalid_request",
                       f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _cursor() -> str | None:
    raw = request.args.get("cursor")
    if raw is None:
        return None
    clients.decode_cursor(raw)  # InvalidCursor -> 400
    return raw


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ApiError(404, "not_found", "no such resource")
    return value


def _page(items: list, next_cursor: str | None) -> Response:
    return jsonify({"items": items, "next_cursor": next_cursor})


def _with_secret(body: dict, secret: str | None) -> dict:
    if secret is not None:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    return body


# -- clients ------------------------------------------------------------------------------

@bp.post("/clients")
def create_client():
    data = _json_body(schemas.INVALID_METADATA)
    svc = services()
    client, secret = clients.create_client(db_session(), svc.digester, svc.settings, data,
                                           actor=g.admin_actor)
    response = jsonify(_with_secret(clients.client_to_dict(client), secret))
    response.status_code = 201
    response.headers["Location"] = f"{bp.url_prefix}/clients/{client.client_id}"
    return response


@bp.get("/clients")
def list_clients():
    _query("limit", "cursor")
    items, next_cursor = clients.list_clients(db_session(), _limit(), _cursor())
    return _page([clients.client_to_dict(c) for c in items], next_cursor)


@bp.get("/clients/<client_id>")
def get_client(client_id: str):
    client = clients.get_client(db_session(), _check_id(client_id))
    if client is None:
        raise clients.ClientNotFound(client_id)
    return jsonify(clients.client_to_dict(client))


@bp.patch("/clients/<client_id>")
def update_client(client_id: str):
    _check_id(client_id)
    data = _json_body(schemas.INVALID_METADATA)
    svc = services()
    client, secret = clients.update_client(db_session(), svc.digester, svc.settings,
                                           client_id, data, actor=g.admin_actor)
    return jsonify(_with_secret(clients.client_to_dict(client), secret))


@bp.delete("/clients/<client_id>")
def delete_client(client_id: str):
    clients.delete_client(db_session(), _check_id(client_id), actor=g.admin_actor)
    return Response(status=204)


@bp.post("/clients/<client_id>/secret")
def rotate_secret(client_id: str):
    _check_id(client_id)
    data = _json_body("invalid_request", optional=True)
    if not isinstance(data, dict) or set(data) - {"grace_seconds"}:
        raise ApiError(400, "invalid_request", "the body may only hold grace_seconds")
    grace = data.get("grace_seconds", 0)
    if isinstance(grace, bool) or not isinstance(grace, int) \
            or not 0 <= grace <= clients.MAX_GRACE_SECONDS:
        raise ApiError(400, "invalid_request",
                       f"grace_seconds must be a whole number from 0 to "
                       f"{clients.MAX_GRACE_SECONDS}")
    client, secret = clients.rotate_secret(db_session(), services().digester, client_id,
                                           grace, actor=g.admin_actor)
    return jsonify({"client_id": client.client_id, "client_secret": secret,
                    "client_secret_expires_at": 0})


# -- users --------------------------------------------------------------------------------

@bp.post("/users")
def create_user():
    data = _json_body("invalid_request")
    user = users.create_user(db_session(), data, actor=g.admin_actor)
    response = jsonify(users.user_to_dict(user))
    response.status_code = 201
    response.headers["Location"] = f"{bp.url_prefix}/users/{user.id}"
    return response


@bp.get("/users/<user_id>")
def get_user(user_id: str):
    user = users.get_user(db_session(), _check_id(user_id))
    if user is None:
        raise users.UserNotFound(user_id)
    return jsonify(users.user_to_dict(user))


@bp.delete("/users/<user_id>")
def delete_user(user_id: str):
    users.delete_user(db_session(), _check_id(user_id), actor=g.admin_actor)
    return Response(status=204)


# -- keys and audit -----------------------------------------------------------------------

@bp.get("/keys")
def list_keys():
    _query("limit", "cursor")  # one page holds every key; accepted for uniformity
    _limit(), _cursor()
    return _page(keys.list_keys(db_session()), None)


@bp.post("/keys/rotate")
def rotate_keys():
    svc = services()
    result = keys.rotate_now(db_session(), svc.sealer, svc.settings, actor=g.admin_actor)
    svc.keyset.refresh(force=True)  # this process signs with the promoted key at once
    return jsonify(result)


@bp.get("/audit")
def list_audit():
    _query("limit", "cursor", "type", "actor", "client_id", "since", "until")
    filters = audit_queries.parse_filters(request.args)
    items, next_cursor = audit_queries.list_events(db_session(), filters, _limit(), _cursor())
    return _page(items, next_cursor)


# -- description --------------------------------------------------------------------------

@bp.get(endpoints.ADMIN_OPENAPI.removeprefix("/admin"))
def openapi_document():
    """Public: the shape of the API is no secret, and tools fetch it without a token."""
    return jsonify(openapi.SPEC)

# The incident runbook routes (web/admin_incidents.py) live on this blueprint too.
from . import admin_incidents  # noqa: E402,F401
