"""Introspection (RFC 7662) and revocation (RFC 7009) of access tokens, through HTTP."""

import pytest

from authserver import clock
from authserver.admin.clients import delete_client, update_client
from tests.support.oauth import assert_oauth_error, basic, register

TOKEN, INTROSPECT, REVOKE = "/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"


@pytest.fixture
def issued(app, client):
    meta, secret = register(app, scope="a b", default_scope="a",
                            allowed_audiences=["https://api.example"])
    auth = basic(meta["client_id"], secret)
    token = client.post(TOKEN, data={"grant_type": "client_credentials"},
                        headers=auth).get_json()["access_token"]
    rs, rs_secret = register(app, client_name="resource server", scope="x")
    return token, meta["client_id"], auth, basic(rs["client_id"], rs_secret)


def _introspect(client, token, auth, **extra):
    response = client.post(INTROSPECT, data={"token": token, **extra}, headers=auth)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def test_an_active_token_introspects_with_its_claims(client, settings, issued):
    token, client_id, _auth, rs_auth = issued
    body = _introspect(client, token, rs_auth)
    assert body["active"] is True
    assert body["client_id"] == client_id and body["sub"] == client_id
    assert body["scope"] == "a" and body["aud"] == "https://api.example"
    assert body["iss"] == settings.issuer and body["token_type"] == "Bearer"
    assert body["exp"] > body["iat"]


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
                                   "x" * 5000])
def test_garbage_is_inactive_or_invalid_request(client, issued, token):
    _, _, _, rs_auth = issued
    response = client.post(INTROSPECT, data={"token": token}, headers=rs_auth)
    if token == "":
        assert_oauth_error(response, 400, "invalid_request")
    else:
        assert response.get_json() == {"active": False}


def test_expired_token_is_inactive(client, issued):
    token, _, _, rs_auth = issued
    clock.travel(3600)
    assert _introspect(client, token, rs_auth) == {"active": False}


def test_a_token_of_a_deleted_client_is_inactive(app, client, issued):
    token, client_id, _, rs_auth = issued
    svc = app.extensions["authserver"]
    with svc.session_factory() as session:
        delete_client(session, client_id, actor="system")
    assert _introspect(client, token, rs_auth) == {"active": False}


def test_a_token_of_a_disabled_client_is_inactive(app, client, issued):
    token, client_id, _, rs_auth = issued
    svc = app.extensions["authserver"]
    with svc.session_factory() as session:
        update_client(session, svc.digester, svc.settings, client_id, {"enabled": False},
                      actor="system")
    assert _introspect(client, token, rs_auth) == {"active": False}


def test_introspection_needs_client_authentication(client, issued):
    token = issued[0]
    assert_oauth_error(client.post(INTROSPECT, data={"token": token}), 401, "invalid_client")
    response = client.post(INTROSPECT, data={"token": token}, headers=basic("x", "y"))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_public_clients_cannot_introspect(app, client, issued):
    public, _ = register(app, client_name="spa", grant_types=["authorization_code"],
                         redirect_uris=["https://spa.example/cb"],
                         token_endpoint_auth_method="none", scope="openid")
    response = client.post(INTROSPECT, data={"token": issued[0],
                                             "client_id": public["client_id"]})
    assert_oauth_error(response, 401, "invalid_client")


def test_revoking_ones_own_token_makes_it_inactive(client, issued):
    token, _, auth, rs_auth = issued
    response = client.post(REVOKE, data={"token": token, "token_type_hint": "access_token"},
                           headers=auth)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert _introspect(client, token, rs_auth) == {"active": False}
    assert client.post(REVOKE, data={"token": token}, headers=auth).status_code == 200


def test_another_clients_token_is_ignored_with_200(client, issued):
    token, _, _, rs_auth = issued
    assert client.post(REVOKE, data={"token": token}, headers=rs_auth).status_code == 200
    assert _introspect(client, token, rs_auth)["active"] is True


def test_revoking_garbage_is_200_and_missing_token_is_invalid_request(client, issued):
    _, _, auth, _ = issued
    assert client.post(REVOKE, data={"token": "nonsense"}, headers=auth).status_code == 200
    assert_oauth_error(client.post(REVOKE, data={}, headers=auth), 400, "invalid_request")
    assert_oauth_error(client.post(REVOKE, data={"token": "x"}), 401, "invalid_client")


def test_validity_follows_the_servers_clock_not_the_wall_clock(app, client, issued):
    """A token issued after the clock moved forward is active (iat is checked on our clock)."""
    _, client_id, auth, rs_auth = issued
    clock.travel(7200)
    token = client.post(TOKEN, data={"grant_type": "client_credentials"},
                        headers=auth).get_json()["access_token"]
    assert _introspect(client, token, rs_auth)["active"] is True
