"""RFC 6749 §3.2 and §2.3.1: the token endpoint (and with it introspection and revocation,
which take the same client credentials) is used over TLS only. The rule is Authlib's: https,
or plain http to a loopback host (development); behind a trusted proxy its
X-Forwarded-Proto says which. A plain-HTTP request from anywhere else gets a clean
``400 invalid_request`` — on the fast path too — and changes nothing (it was a 500 from Flask
and a 200 from the fast path)."""

from __future__ import annotations

from sqlalchemy import func, select

from authserver import endpoints
from authserver.models import AuditEvent
from tests.support.oauth import basic, register

CC = {"grant_type": "client_credentials"}
PLAIN = "http://auth.example.test"
TLS = "https://auth.example.test"


def _issued(app) -> int:
    with app.extensions["authserver"].session_factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.type == "token.issued"))


def _refused(response) -> None:
    assert response.status_code == 400, response.get_data()
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert "https" in body["error_description"]
    assert response.headers["Cache-Control"] == "no-store"


def test_plain_http_from_a_remote_host_is_refused_and_changes_nothing(app):
    meta, secret = register(app, scope="a", default_scope="a")
    auth = basic(meta["client_id"], secret)
    http = app.test_client()

    # Uncached first (Flask answers), then cached by a TLS request (the fast path's turn).
    _refused(http.post(endpoints.TOKEN, data=CC, headers=auth, base_url=PLAIN))
    assert _issued(app) == 0
    token = http.post(endpoints.TOKEN, data=CC, headers=auth, base_url=TLS).get_json()
    assert http.post(endpoints.TOKEN, data=CC, headers=auth, base_url=TLS).status_code == 200
    _refused(http.post(endpoints.TOKEN, data=CC, headers=auth, base_url=PLAIN))
    assert _issued(app) == 2

    access = token["access_token"]
    _refused(http.post(endpoints.INTROSPECTION, data={"token": access}, headers=auth,
                       base_url=PLAIN))
    _refused(http.post(endpoints.REVOCATION, data={"token": access}, headers=auth,
                       base_url=PLAIN))
    # the refused revocation revoked nothing
    assert http.post(endpoints.INTROSPECTION, data={"token": access}, headers=auth,
                     base_url=TLS).get_json()["active"] is True


def test_plain_http_to_a_loopback_host_is_allowed(app):
    meta, secret = register(app, scope="a", default_scope="a")
    auth = basic(meta["client_id"], secret)
    http = app.test_client()
    for base in ("http://127.0.0.1:8000", "http://localhost", "http://[::1]:8000"):
        for _ in range(2):  # Flask, then the fast path
            answer = http.post(endpoints.TOKEN, data=CC, headers=auth, base_url=base)
            assert answer.status_code == 200, (base, answer.get_data())


def test_the_admin_api_userinfo_and_sign_in_refuse_plain_http_from_a_remote_host(app):
    meta, secret = register(app, scope="admin", default_scope="admin")
    http = app.test_client()
    admin = http.post(endpoints.TOKEN, data=CC, headers=basic(meta["client_id"], secret),
                      base_url=TLS).get_json()["access_token"]
    bearer = {"Authorization": "Bearer " + admin}
    _refused(http.get("/admin/keys", headers=bearer, base_url=PLAIN))
    assert http.get("/admin/keys", headers=bearer, base_url=TLS).status_code == 200
    _refused(http.get(endpoints.USERINFO, headers=bearer, base_url=PLAIN))
    _refused(http.post("/login", data={"username": "someone", "password": "a password"},
                       base_url=PLAIN))
    _refused(http.get(endpoints.AUTHORIZATION, base_url=PLAIN))


def test_what_carries_no_secret_stays_open_to_plain_http(app):
    http = app.test_client()
    for path in (endpoints.JWKS, endpoints.OPENID_CONFIGURATION, endpoints.OAUTH_METADATA,
                 "/healthz", "/readyz", "/metrics"):
        assert http.get(path, base_url=PLAIN).status_code == 200, path
