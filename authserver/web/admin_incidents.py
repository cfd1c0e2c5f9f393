"""The incident runbook's admin endpoints (README, "Incident runbook"), on the admin
blueprint and behind its guard. Each calls one admin/incidents.py service."""

from __future__ import annotations

from flask import Response, g, jsonify

from ..admin import incidents
from ..db import transaction
from ..errors import json_error
from ..extensions import db_session, services
from ..oauth import consent
from .admin_api import ApiError, _check_id, _json_body, bp


@bp.errorhandler(incidents.UnknownKey)
def _unknown_key(_exc) -> Response:
    return json_error(404, "not_found", "no such signing key")


@bp.post("/keys/<kid>/revoke")
def revoke_key(kid: str):
    svc = services()
    result = incidents.revoke_key(db_session(), svc.sealer, _check_id(kid), actor=g.admin_actor)
    svc.keyset.refresh(force=True)  # this process stops using the key at once
    return jsonify(result)


@bp.post("/clients/<client_id>/revoke-tokens")
def revoke_client_tokens(client_id: str):
    data = _json_body("invalid_request", optional=True)
    if not isinstance(data, dict) or set(data) - {"rotate_secret"}:
        raise ApiError(400, "invalid_request", "the only member is rotate_secret")
    rotate = data.get("rotate_secret", False)
    if not isinstance(rotate, bool):
        raise ApiError(400, "invalid_request", "rotate_secret must be true or false")
    result = incidents.revoke_client_tokens(db_session(), _check_id(client_id),
                                            actor=g.admin_actor, rotate=rotate,
                                            digester=services().digester)
    return jsonify(result)


@bp.delete("/users/<user_id>/consents/<client_id>")
def revoke_consent(user_id: str, client_id: str):
    session = db_session()
    with transaction(session):
        revoked = consent.revoke(session, _check_id(user_id), _check_id(client_id),
                                 actor=g.admin_actor)
    if not revoked:
        return json_error(404, "not_found", "no active consent for this user and client")
    return Response(status=204)


@bp.post("/users/<user_id>/revoke")
def revoke_user(user_id: str):
    return jsonify(incidents.revoke_user(db_session(), _check_id(user_id), actor=g.admin_actor))


# -- their part of the OpenAPI description (admin/openapi.py) --------------------------------

def _describe() -> None:
    from ..admin import openapi as oa

    auth, not_found = oa._AUTH_ERRORS, oa._NOT_FOUND
    oa.SPEC["paths"].update({
        "/admin/keys/{kid}/revoke": {
            "parameters": [oa._path_id("kid")],
            "post": {
                "operationId": "revokeKey",
                "description": "Signing key compromised: unpublished at once, a new key "
                               "active at once if it was active; its tokens turn inactive.",
                "responses": {"200": oa._ok("what was revoked, promoted and created",
                                            "KeyRevocation"),
                              "404": oa._error("no such signing key"), **auth},
            },
        },
        "/admin/clients/{client_id}/revoke-tokens": {
            "parameters": [oa._path_id("client_id")],
            "post": {
                "operationId": "revokeClientTokens",
                "description": "Client compromised: every token issued to it so far turns "
                               "inactive, its refresh families are revoked; optionally its "
                               "secret is rotated (returned once).",
                "requestBody": {"required": False, "content": oa._json("ClientRevocation")},
                "responses": {"200": oa._ok("the cut-off time and counts",
                                            "ClientTokensRevoked"),
                              "400": oa._error("invalid body, or rotate_secret for a "
                                               "client without a secret"),
                              "404": not_found, **auth},
            },
        },
        "/admin/users/{user_id}/consents/{client_id}": {
            "parameters": [oa._path_id("user_id"), oa._path_id("client_id")],
            "delete": {
                "operationId": "revokeConsent",
                "description": "Forget the user's consent to the client (asked again next "
                               "time); the client's refresh families for the user are "
                               "revoked.",
                "responses": {"204": {"description": "revoked"},
                              "404": oa._error("no active consent for this user and client"),
                              **auth},
            },
        },
        "/admin/users/{user_id}/revoke": {
            "parameters": [oa._path_id("user_id")],
            "post": {
                "operationId": "revokeUser",
                "description": "User compromised: sessions ended, refresh families revoked, "
                               "every access token issued for the user so far inactive.",
                "responses": {"200": oa._ok("the cut-off time and counts", "UserRevoked"),
                              "404": not_found, **auth},
            },
        },
    })
    nullable = {"type": ["string", "null"]}
    oa.SPEC["components"]["schemas"].update({
        "KeyRevocation": {
            "type": "object", "additionalProperties": False,
            "required": ["kid", "alg", "previous_state", "promoted", "pending"],
            "properties": {"kid": {"type": "string"}, "alg": {"type": "string"},
                           "previous_state": {"enum": ["pending", "active", "retired"]},
                           "promoted": nullable, "pending": nullable},
        },
        "ClientRevocation": {
            "type": "object", "additionalProperties": False,
            "properties": {"rotate_secret": {"type": "boolean"}},
        },
        "ClientTokensRevoked": {
            "type": "object", "additionalProperties": False,
            "required": ["client_id", "tokens_revoked_before", "refresh_families_revoked"],
            "properties": {"client_id": {"type": "string"},
                           "tokens_revoked_before": {"type": "string", "format": "date-time"},
                           "refresh_families_revoked": {"type": "integer"},
                           "client_secret": {"type": "string"}},
        },
        "UserRevoked": {
            "type": "object", "additionalProperties": False,
            "required": ["user_id", "tokens_revoked_before", "sessions_ended",
                         "refresh_families_revoked"],
            "properties": {"user_id": {"type": "string"},
                           "tokens_revoked_before": {"type": "string", "format": "date-time"},
                           "sessions_ended": {"type": "integer"},
                           "refresh_families_revoked": {"type": "integer"}},
        },
    })


_describe()
