"""Factories: objects made through the real services, each returned with its secret once.

- ``make_client(app_or_services, **metadata) -> (client_dict, secret)``: admin/clients.py;
  defaults to a client-credentials client; an authorization-code client without
  ``redirect_uris`` gets ``https://rp.example.test/callback``.
- ``make_user(app_or_services, **data) -> (user_dict, password)``: admin/users.py.
- ``admin_token(app, scope="admin", **kwargs) -> str``: a real client-credentials token from
  the token endpoint for a new client holding ``scope``.
"""

from __future__ import annotations

import base64
import secrets
from urllib.parse import quote

from authserver import endpoints
from authserver.admin import clients, users
from authserver.extensions import Services

DEFAULT_REDIRECT_URI = "https://rp.example.test/callback"


def services_of(app_or_services) -> Services:
    if isinstance(app_or_services, Services):
        return app_or_services
    return app_or_services.extensions["authserver"]


def make_client(app_or_services, **metadata) -> tuple[dict, str | None]:
    svc = services_of(app_or_services)
    metadata.setdefault("client_name", "test client")
    metadata.setdefault("grant_types", ["client_credentials"])
    if "authorization_code" in metadata["grant_types"]:
        metadata.setdefault("redirect_uris", [DEFAULT_REDIRECT_URI])
    with svc.session_factory() as session:
        client, secret = clients.create_client(session, svc.digester, svc.settings, metadata,
                                               actor="system")
        body = clients.client_to_dict(client)
    if secret is not None:
        body["client_secret"] = secret
    return body, secret


def make_user(app_or_services, **data) -> tuple[dict, str]:
    svc = services_of(app_or_services)
    data.setdefault("username", "user-" + secrets.token_hex(4))
    data.setdefault("password", "correct horse " + secrets.token_hex(4))
    with svc.session_factory() as session:
        user = users.create_user(session, dict(data), actor="system")
        return users.user_to_dict(user), data["password"]


def basic_auth(client_id: str, secret: str) -> dict:
    """RFC 6749 §2.3.1: each part form-urlencoded, then Base64."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def client_credentials_token(app, client_id: str, secret: str, scope: str | None = None,
                             resource: str | None = None) -> str:
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    if resource is not None:
        form["resource"] = resource
    response = app.test_client().post(endpoints.TOKEN, data=form,
                                      headers=basic_auth(client_id, secret))
    assert response.status_code == 200, (response.status_code, response.get_data()[:300])
    return response.get_json()["access_token"]


def admin_token(app, scope: str = "admin", *, audiences: list[str] | None = None,
                resource: str | None = None, name: str = "admin client") -> str:
    """A bearer token for the admin API (or, with another scope or audience, one that the
    admin API must refuse)."""
    client, secret = make_client(app, client_name=name, grant_types=["client_credentials"],
                                 scope=scope, default_scope=scope,
                                 allowed_audiences=audiences or [])
    return client_credentials_token(app, client["client_id"], secret, scope=scope,
                                    resource=resource)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
