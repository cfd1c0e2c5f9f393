"""OpenAPI 3.1 description of the admin API (CONTRACT §5), served at /admin/openapi.json.

Hand-written so it says exactly what the server enforces (admin/schemas.py): closed objects
(``additionalProperties: false``), JSON types, required members, enums. A schemathesis test
fuzzes the API against it.
"""

from __future__ import annotations

from .. import __version__
from . import schemas

_STR_LIST = {"type": "array", "items": {"type": "string"}, "maxItems": schemas.MAX_LIST,
             "uniqueItems": True}
_URI_LIST = {"type": "array", "items": {"type": "string", "minLength": 1,
                                        "maxLength": schemas.MAX_URI},
             "maxItems": schemas.MAX_LIST, "uniqueItems": True}
_JWKS = {
    "type": "object",
    "description": "A JWK set of public keys (no private members such as d)",
    "required": ["keys"],
    "additionalProperties": False,
    "properties": {"keys": {"type": "array", "minItems": 1,
                            "maxItems": schemas.MAX_JWKS_KEYS,
                            "items": {"type": "object"}}},
}

_METADATA_PROPERTIES = {
    "client_name": {"type": "string", "minLength": 1, "maxLength": schemas.MAX_NAME},
    "grant_types": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "string", "enum": list(schemas.GRANT_TYPES)},
                    "description": "default [\"authorization_code\"] (RFC 7591)"},
    "response_types": {"type": "array", "uniqueItems": True,
                       "items": {"type": "string", "enum": ["code"]},
                       "description": "derived from grant_types; if given it must agree"},
    "redirect_uris": {**_URI_LIST, "description": "absolute, no fragment; https, http for "
                      "loopback hosts, or a reverse-domain private-use scheme (RFC 8252)"},
    "post_logout_redirect_uris": _URI_LIST,
    "scope": {"type": "string", "maxLength": schemas.MAX_SCOPE,
              "description": "allowed scopes, space-separated (RFC 6749 §3.3)"},
    "default_scope": {"type": "string", "maxLength": schemas.MAX_SCOPE,
                      "description": "granted when a token request names no scope; a "
                                     "subset of scope"},
    "allowed_audiences": {**_URI_LIST, "description": "RFC 8707 resources this client may "
                          "request; the first is the default; none: the issuer"},
    "token_endpoint_auth_method": {"type": "string", "enum": list(schemas.AUTH_METHODS)},
    "jwks": {"oneOf": [_JWKS, {"type": "null"}]},
    "jwks_uri": {"type": ["string", "null"], "maxLength": schemas.MAX_URI},
    "ip_allowlist": {**_STR_LIST, "description": "CIDR networks the client may call from"},
    "access_token_ttl": {"type": ["integer", "null"], "minimum": 1},
    "refresh_token_ttl": {"type": ["integer", "null"], "minimum": 1,
                          "maximum": schemas.MAX_REFRESH_TTL},
    "id_token_signed_response_alg": {"type": "string", "enum": list(schemas.ID_TOKEN_ALGS)},
    "skip_consent": {"type": "boolean"},
    "enabled": {"type": "boolean"},
}

_CLIENT_PROPERTIES = {
    "client_id": {"type": "string"},
    "client_id_issued_at": {"type": "integer"},
    **{k: v for k, v in _METADATA_PROPERTIES.items()},
    "jwks": {"type": ["object", "null"]},
    "client_secret_expires_at": {"type": "integer"},
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"},
                   "request_id": {"type": ["string", "null"]}},
}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_AUTH_ERRORS = {
    "401": {**_error("missing, invalid or wrong-audience token"),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    "403": {**_error("token without the admin scope"),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    "429": {**_error("too many requests from this caller"),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
}


def _json(ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _ok(description: str, ref: str) -> dict:
    return {"description": description, "content": _json(ref)}


_PAGING = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
    {"name": "cursor", "in": "query", "required": False,
     "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
]


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}


_NOT_FOUND = _error("no such resource")
_WRONG_TYPE = {"413": _error("a body over AUTHSERVER_MAX_BODY_BYTES"),
               "415": _error("a body that is not application/json")}
_FILTER = {"type": "string", "pattern": "^[!-~]{1,200}$", "minLength": 1, "maxLength": 200}

SPEC: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "authserver admin API",
        "version": __version__,
        "description": "Administration of clients, users, signing keys and the audit log. "
                       "Every operation needs a bearer access token of this server with "
                       "scope admin and aud = the issuer.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/admin/clients": {
            "post": {
                "operationId": "createClient",
                "requestBody": {"required": True, "content": _json("ClientMetadataCreate")},
                "responses": {
                    "201": _ok("the client; client_secret only here, once", "ClientCreated"),
                    "400": _error("invalid_client_metadata or invalid_redirect_uri"),
                    **_WRONG_TYPE, **_AUTH_ERRORS,
                },
            },
            "get": {
                "operationId": "listClients",
                "parameters": _PAGING,
                "responses": {"200": _ok("a page of clients", "ClientPage"),
                              "400": _error("invalid limit or cursor"), **_AUTH_ERRORS},
            },
        },
        "/admin/clients/{client_id}": {
            "parameters": [_path_id("client_id")],
            "get": {
                "operationId": "getClient",
                "responses": {"200": _ok("the client, never its secret", "Client"),
                              "404": _NOT_FOUND, **_AUTH_ERRORS},
            },
            "patch": {
                "operationId": "updateClient",
                "requestBody": {"required": True, "content": _json("ClientMetadataUpdate")},
                "responses": {
                    "200": _ok("the updated client (client_secret when a switch to a secret "
                               "method issued one)", "ClientCreated"),
                    "400": _error("invalid_client_metadata or invalid_redirect_uri"),
                    "404": _NOT_FOUND, **_WRONG_TYPE, **_AUTH_ERRORS,
                },
            },
            "delete": {
                "operationId": "deleteClient",
                "responses": {"204": {"description": "deleted; its tokens are inactive"},
                              "404": _NOT_FOUND, **_AUTH_ERRORS},
            },
        },
        "/admin/clients/{client_id}/secret": {
            "parameters": [_path_id("client_id")],
            "post": {
                "operationId": "rotateClientSecret",
                "requestBody": {"required": False, "content": _json("SecretRotation")},
                "responses": {
                    "200": _ok("the new secret, once", "RotatedSecret"),
                    "400": _error("invalid body, or a client without a secret"),
                    "404": _NOT_FOUND, **_WRONG_TYPE, **_AUTH_ERRORS,
                },
            },
        },
        "/admin/users": {
            "post": {
                "operationId": "createUser",
                "requestBody": {"required": True, "content": _json("UserCreate")},
                "responses": {"201": _ok("the user", "User"),
                              "400": _error("invalid_request"),
                              "409": _error("username is taken"), **_WRONG_TYPE,
                              **_AUTH_ERRORS},
            },
        },
        "/admin/users/{user_id}": {
            "parameters": [_path_id("user_id")],
            "get": {
                "operationId": "getUser",
                "responses": {"200": _ok("the user", "User"), "404": _NOT_FOUND,
                              **_AUTH_ERRORS},
            },
            "delete": {
                "operationId": "deleteUser",
                "responses": {"204": {"description": "deleted; sessions ended, tokens "
                                                     "revoked"},
                              "404": _NOT_FOUND, **_AUTH_ERRORS},
            },
        },
        "/admin/keys": {
            "get": {
                "operationId": "listKeys",
                "parameters": _PAGING,
                "responses": {"200": _ok("the key set with states (one page)", "KeyPage"),
                              "400": _error("invalid limit or cursor"), **_AUTH_ERRORS},
            },
        },
        "/admin/keys/rotate": {
            "post": {
                "operationId": "rotateKeys",
                "responses": {"200": _ok("what was promoted, retired and created",
                                         "KeyRotation"), **_AUTH_ERRORS},
            },
        },
        "/admin/audit": {
            "get": {
                "operationId": "listAuditEvents",
                "parameters": [
                    *_PAGING,
                    {"name": "type", "in": "query", "schema": _FILTER},
                    {"name": "actor", "in": "query", "schema": _FILTER},
                    {"name": "client_id", "in": "query", "schema": _FILTER},
                    {"name": "since", "in": "query",
                     "schema": {"type": "string", "format": "date-time"}},
                    {"name": "until", "in": "query",
                     "schema": {"type": "string", "format": "date-time"}},
                ],
                "responses": {"200": _ok("events, newest first", "AuditPage"),
                              "400": _error("invalid filter, limit or cursor"),
                              **_AUTH_ERRORS},
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "bearerFormat": "JWT"}},
        "schemas": {
            "Error": _ERROR,
            "ClientMetadataCreate": {
                "type": "object", "additionalProperties": False,
                "required": ["client_name"], "properties": _METADATA_PROPERTIES,
            },
            "ClientMetadataUpdate": {
                "type": "object", "additionalProperties": False,
                "properties": _METADATA_PROPERTIES,
            },
            "Client": {
                "type": "object", "additionalProperties": False,
                "required": ["client_id", "client_id_issued_at", "client_name",
                             "grant_types", "token_endpoint_auth_method"],
                "properties": _CLIENT_PROPERTIES,
            },
            "ClientCreated": {
                "type": "object", "additionalProperties": False,
                "required": ["client_id", "client_name", "grant_types",
                             "token_endpoint_auth_method"],
                "properties": {**_CLIENT_PROPERTIES, "client_secret": {"type": "string"}},
            },
            "ClientPage": {
                "type": "object", "additionalProperties": False,
                "required": ["items", "next_cursor"],
                "properties": {"items": {"type": "array",
                                         "items": {"$ref": "#/components/schemas/Client"}},
                               "next_cursor": {"type": ["string", "null"]}},
            },
            "SecretRotation": {
                "type": "object", "additionalProperties": False,
                "properties": {"grace_seconds": {"type": "integer", "minimum": 0,
                                                 "maximum": 2592000}},
            },
            "RotatedSecret": {
                "type": "object", "additionalProperties": False,
                "required": ["client_id", "client_secret", "client_secret_expires_at"],
                "properties": {"client_id": {"type": "string"},
                               "client_secret": {"type": "string"},
                               "client_secret_expires_at": {"type": "integer"}},
            },
            "UserCreate": {
                "type": "object", "additionalProperties": False,
                "required": ["username", "password"],
                "properties": {
                    "username": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._@+-]*$",
                                 "minLength": 1, "maxLength": 150},
                    "password": {"type": "string", "minLength": 8, "maxLength": 1024},
                    "email": {"type": ["string", "null"], "format": "email",
                              "maxLength": 320},
                    "email_verified": {"type": "boolean"},
                    "name": {"type": ["string", "null"], "maxLength": 200},
                    "given_name": {"type": ["string", "null"], "maxLength": 100},
                    "family_name": {"type": ["string", "null"], "maxLength": 100},
                },
            },
            "User": {
                "type": "object", "additionalProperties": False,
                "required": ["id", "username", "email", "email_verified", "name",
                             "given_name", "family_name", "created_at"],
                "properties": {
                    "id": {"type": "string"},
                    "username": {"type": "string"},
                    "email": {"type": ["string", "null"]},
                    "email_verified": {"type": "boolean"},
                    "name": {"type": ["string", "null"]},
                    "given_name": {"type": ["string", "null"]},
                    "family_name": {"type": ["string", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "Key": {
                "type": "object", "additionalProperties": False,
                "required": ["kid", "alg", "kty", "state", "created_at", "activated_at",
                             "retired_at"],
                "properties": {
                    "kid": {"type": "string"}, "alg": {"type": "string"},
                    "kty": {"type": "string"},
                    "state": {"type": "string", "enum": ["pending", "active", "retired"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "activated_at": {"type": ["string", "null"], "format": "date-time"},
                    "retired_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
            "KeyPage": {
                "type": "object", "additionalProperties": False,
                "required": ["items", "next_cursor"],
                "properties": {"items": {"type": "array",
                                         "items": {"$ref": "#/components/schemas/Key"}},
                               "next_cursor": {"type": "null"}},
            },
            "KeyRotation": {
                "type": "object",
                "required": ["promoted", "retired", "pending", "early_promotion"],
            },
            "AuditEvent": {
                "type": "object", "additionalProperties": False,
                "required": ["id", "time", "type", "outcome", "actor", "client_id", "ip",
                             "request_id", "details"],
                "properties": {
                    "id": {"type": "string"},
                    "time": {"type": "string", "format": "date-time"},
                    "type": {"type": "string"}, "outcome": {"type": "string"},
                    "actor": {"type": "string"},
                    "client_id": {"type": ["string", "null"]},
                    "ip": {"type": ["string", "null"]},
                    "request_id": {"type": ["string", "null"]},
                    "details": {"type": "object"},
                },
            },
            "AuditPage": {
                "type": "object", "additionalProperties": False,
                "required": ["items", "next_cursor"],
                "properties": {"items": {"type": "array",
                                         "items": {"$ref": "#/components/schemas/AuditEvent"}},
                               "next_cursor": {"type": ["string", "null"]}},
            },
        },
    },
}
# The description document itself is public.
SPEC["paths"]["/admin/openapi.json"] = {
    "get": {"operationId": "getOpenApi", "security": [],
            "responses": {"200": {"description": "this document",
                                  "content": {"application/json": {"schema": {
                                      "type": "object"}}}}}},
}
