"""Attacks on the admin API's guard (CONTRACT §5, RFC 6750 §3.1): each refused with 401
``invalid_token`` (or 403 ``insufficient_scope``) and the right ``WWW-Authenticate``."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from authserver import clock, endpoints
from authserver.models import AuditEvent, Client
from tests.support.factories import (
    admin_token,
    basic_auth,
    bearer,
    client_credentials_token,
    make_client,
)
from tests.support.jwks_server import forge

REALM = 'Bearer realm="authserver-admin"'
PATHS = [("get", "/admin/clients"), ("post", "/admin/clients"), ("get", "/admin/keys"),
         ("post", "/admin/keys/rotate"), ("get", "/admin/audit"), ("post", "/admin/users"),
         ("delete", "/admin/clients/x"), ("get", "/admin/users/x")]


def _svc(app):
    return app.extensions["authserver"]


def _assert_401(response, with_error: bool = True):
    assert response.status_code == 401, (response.status_code, response.get_data()[:200])
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["Cache-Control"] == "no-store"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(REALM)
    assert ('error="invalid_token"' in challenge) is with_error


def _claims(app, **overrides) -> dict:
    svc = _svc(app)
    now = int(clock.timestamp())
    claims = {"iss": svc.settings.issuer, "sub": "c", "aud": svc.settings.issuer,
              "exp": now + 300, "iat": now, "jti": "j" + str(now), "client_id": "c",
              "scope": "admin"}
    claims.update(overrides)
    return claims


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_no_token_is_401_with_a_bare_challenge(client, method, path):
    response = getattr(client, method)(path)
    _assert_401(response, with_error=False)
    assert response.headers["WWW-Authenticate"] == REALM


def test_other_schemes_get_the_bare_challenge(app, client):
    admin = make_client(app, client_name="a", scope="admin", default_scope="admin")
    for header in (basic_auth(admin[0]["client_id"], admin[1]), {"Authorization": "Token x"}):
        _assert_401(client.get("/admin/clients", headers=header), with_error=False)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "Bearer", "e30.e30.", "x" * 9000])
def test_garbage_token_is_401(app, client, token):
    _assert_401(client.get("/admin/clients", headers=bearer(token)))


def test_empty_bearer_is_401(client):
    _assert_401(client.get("/admin/clients", headers={"Authorization": "Bearer "}))


def test_expired_token_is_401(app, client):
    token = admin_token(app)
    assert client.get("/admin/clients", headers=bearer(token)).status_code == 200
    clock.travel(601)  # the default access-token lifetime is 600 s
    _assert_401(client.get("/admin/clients", headers=bearer(token)))


def test_token_for_another_audience_is_401(app, client):
    token = admin_token(app, audiences=["https://api.example.test"])
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == \
        "https://api.example.test"
    _assert_401(client.get("/admin/clients", headers=bearer(token)))


def test_token_for_the_issuer_and_another_audience_is_401(app, client):
    """A resource server that received such a token must not be able to replay it here."""
    issuer = _svc(app).settings.issuer
    api = "https://api.example.test"
    admin, secret = make_client(app, client_name="both", scope="admin", default_scope="admin",
                                allowed_audiences=[api, issuer])
    response = client.post(endpoints.TOKEN, headers=basic_auth(admin["client_id"], secret),
                           data={"grant_type": "client_credentials", "resource": [api, issuer]})
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["access_token"]
    assert set(jwt.decode(token, options={"verify_signature": False})["aud"]) == {api, issuer}
    _assert_401(client.get("/admin/clients", headers=bearer(token)))
    issuer_only = client_credentials_token(app, admin["client_id"], secret, resource=issuer)
    assert client.get("/admin/clients", headers=bearer(issuer_only)).status_code == 200


def test_token_signed_by_a_foreign_key_is_401(app, client):
    foreign = ec.generate_private_key(ec.SECP256R1())
    server_kid = _svc(app).keyset.signing_key("ES256").kid
    for kid in (server_kid, "unknown-kid"):
        token = jwt.encode(_claims(app), foreign, algorithm="ES256",
                           headers={"kid": kid, "typ": "at+jwt"})
        _assert_401(client.get("/admin/clients", headers=bearer(token)))


def test_alg_none_and_hmac_with_the_public_key_are_401(app, client):
    svc = _svc(app)
    key = svc.keyset.signing_key("ES256")
    header = {"alg": "none", "typ": "at+jwt", "kid": key.kid}
    _assert_401(client.get("/admin/clients", headers=bearer(forge(header, _claims(app)))))
    public_pem = key.public_key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    forged = forge(header, _claims(app),
                   lambda msg: hmac.new(public_pem, msg, hashlib.sha256).digest())
    _assert_401(client.get("/admin/clients", headers=bearer(forged)))


def test_server_signed_jwt_that_is_not_an_access_token_is_401(app, client):
    """An ID token (typ JWT) or any other server-signed JWT is not an access token."""
    admin, _ = make_client(app, client_name="a", scope="admin", default_scope="admin")
    claims = _claims(app, sub=admin["client_id"], client_id=admin["client_id"])
    svc = _svc(app)
    for alg, typ in (("RS256", "JWT"), ("ES256", "JWT"), ("ES256", None)):
        token = svc.signer.sign(claims, alg=alg, typ=typ) if typ else jwt.encode(
            claims, svc.keyset.signing_key(alg).private_key, algorithm=alg,
            headers={"kid": svc.keyset.signing_key(alg).kid})
        _assert_401(client.get("/admin/clients", headers=bearer(token)))
    # the same claims as at+jwt are accepted: the refusals above are about typ alone
    good = svc.signer.sign(claims, alg="ES256", typ="at+jwt")
    assert client.get("/admin/clients", headers=bearer(good)).status_code == 200


def test_other_issuer_is_401(app, client):
    admin, _ = make_client(app, client_name="a", scope="admin", default_scope="admin")
    claims = _claims(app, sub=admin["client_id"], client_id=admin["client_id"],
                     iss="https://evil.example.test")
    token = _svc(app).signer.sign(claims, alg="ES256", typ="at+jwt")
    _assert_401(client.get("/admin/clients", headers=bearer(token)))


def test_token_without_admin_scope_is_403(app, client):
    token = admin_token(app, scope="orders:read")
    response = client.get("/admin/clients", headers=bearer(token))
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    assert response.headers["Cache-Control"] == "no-store"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(REALM)
    assert 'error="insufficient_scope"' in challenge and 'scope="admin"' in challenge


def test_scope_is_matched_as_a_token_not_a_substring(app, client):
    token = admin_token(app, scope="administrator")
    assert client.get("/admin/clients", headers=bearer(token)).status_code == 403


def test_revoked_token_is_401(app, client):
    admin, secret = make_client(app, client_name="a", scope="admin", default_scope="admin")
    token = client_credentials_token(app, admin["client_id"], secret)
    assert client.get("/admin/clients", headers=bearer(token)).status_code == 200
    revoked = client.post(endpoints.REVOCATION, data={"token": token},
                          headers=basic_auth(admin["client_id"], secret))
    assert revoked.status_code == 200
    _assert_401(client.get("/admin/clients", headers=bearer(token)))


def test_token_of_a_deleted_or_disabled_admin_client_is_401(app, client):
    token = admin_token(app)
    other = admin_token(app, name="second admin")
    me = jwt.decode(token, options={"verify_signature": False})["client_id"]
    assert client.patch(f"/admin/clients/{me}", json={"enabled": False},
                        headers=bearer(other)).status_code == 200
    _assert_401(client.get("/admin/clients", headers=bearer(token)))
    assert client.delete(f"/admin/clients/{me}", headers=bearer(other)).status_code == 204
    _assert_401(client.get("/admin/clients", headers=bearer(token)))


def test_refusals_are_audited_without_the_token(app, client):
    garbage = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.secretpart"
    client.get("/admin/clients", headers=bearer(garbage))
    scoped = admin_token(app, scope="orders:read")
    client.get("/admin/keys", headers=bearer(scoped))
    with _svc(app).session_factory() as session:
        events = session.scalars(select(AuditEvent).where(
            AuditEvent.type == "admin.auth_failed").order_by(AuditEvent.id)).all()
        scoped_client = session.scalars(select(Client).where(
            Client.client_name == "admin client")).one().client_id
    assert [e.outcome for e in events] == ["failure", "failure"]
    assert '"invalid_token"' in events[0].details and events[0].actor == "system"
    assert '"insufficient_scope"' in events[1].details
    assert events[1].actor == f"client:{scoped_client}"
    for e in events:
        assert "secretpart" not in e.details and scoped not in e.details


def test_openapi_document_is_public_and_everything_else_is_not(client):
    assert client.get(endpoints.ADMIN_OPENAPI).status_code == 200
    assert client.get("/admin/clients").status_code == 401


def test_admin_actor_is_the_token_client(app, client):
    token = admin_token(app)
    me = jwt.decode(token, options={"verify_signature": False})["client_id"]
    client.post("/admin/clients", headers=bearer(token),
                json={"client_name": "x", "grant_types": ["client_credentials"]})
    events = client.get("/admin/audit?type=client.created&limit=1",
                        headers=bearer(token)).get_json()["items"]
    assert events[0]["actor"] == f"client:{me}"
