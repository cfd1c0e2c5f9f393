"""Client credentials (RFC 6749 §4.4) with RFC 9068 JWT access tokens, through HTTP."""

import jwt
import pytest

from authserver import clock
from tests.support.oauth import assert_oauth_error, basic, register

TOKEN = "/oauth2/token"


def _jwks_key(client, token):
    kid = jwt.get_unverified_header(token)["kid"]
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    [jwk] = [k for k in keys if k["kid"] == kid]
    return jwt.PyJWK(jwk)


def test_token_is_an_rfc9068_jwt_verifiable_with_the_jwks(app, client, settings):
    meta, secret = register(app, scope="orders:read orders:write", default_scope="orders:read",
                            allowed_audiences=["https://orders.example.com"])
    response = client.post(TOKEN, data={"grant_type": "client_credentials"},
                           headers=basic(meta["client_id"], secret))
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl
    assert body["scope"] == "orders:read"
    assert "refresh_token" not in body
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["kid"]
    claims = jwt.decode(token, _jwks_key(client, token).key, algorithms=[header["alg"]],
                        audience="https://orders.example.com", issuer=settings.issuer)
    assert claims["sub"] == claims["client_id"] == meta["client_id"]
    assert claims["scope"] == "orders:read"
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl
    assert claims["jti"]


def test_client_secret_post_works_for_a_post_client(app, client):
    meta, secret = register(app, scope="a", default_scope="a",
                            token_endpoint_auth_method="client_secret_post")
    response = client.post(TOKEN, data={"grant_type": "client_credentials",
                                        "client_id": meta["client_id"], "client_secret": secret})
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("requested, granted", [
    ("a", "a"), ("b a", "a b"), ("a a", "a"),
])
def test_a_subset_of_the_allowed_scopes_is_granted(app, client, requested, granted):
    meta, secret = register(app, scope="a b c")
    response = client.post(TOKEN, data={"grant_type": "client_credentials", "scope": requested},
                           headers=basic(meta["client_id"], secret))
    assert response.get_json()["scope"] == granted


@pytest.mark.parametrize("requested", ["admin", "a admin", "A", "a\u00e9"])
def test_scope_escalation_is_invalid_scope(app, client, requested):
    meta, secret = register(app, scope="a b", default_scope="a")
    response = client.post(TOKEN, data={"grant_type": "client_credentials", "scope": requested},
                           headers=basic(meta["client_id"], secret))
    assert_oauth_error(response, 400, "invalid_scope")


def test_no_scope_and_no_default_scope_is_invalid_scope(app, client):
    meta, secret = register(app, scope="a b")
    response = client.post(TOKEN, data={"grant_type": "client_credentials"},
                           headers=basic(meta["client_id"], secret))
    assert_oauth_error(response, 400, "invalid_scope")


def test_audience_is_the_default_or_the_requested_allowed_resource(app, client):
    meta, secret = register(app, scope="a", default_scope="a",
                            allowed_audiences=["https://one.example", "https://two.example"])
    auth = basic(meta["client_id"], secret)

    def aud(**extra):
        response = client.post(TOKEN, data={"grant_type": "client_credentials", **extra},
                               headers=auth)
        return response, jwt.decode(response.get_json().get("access_token", "e.e.e"),
                                    options={"verify_signature": False}) \
            if response.status_code == 200 else None

    assert aud()[1]["aud"] == "https://one.example"
    assert aud(resource="https://two.example")[1]["aud"] == "https://two.example"
    response, _ = aud(resource="https://evil.example")
    assert_oauth_error(response, 400, "invalid_target")


def test_a_client_without_audiences_gets_the_issuer(app, client, settings):
    meta, secret = register(app, scope="a", default_scope="a")
    token = client.post(TOKEN, data={"grant_type": "client_credentials"},
                        headers=basic(meta["client_id"], secret)).get_json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == settings.issuer


def test_per_client_access_token_ttl_overrides_the_default(app, client):
    meta, secret = register(app, scope="a", default_scope="a", access_token_ttl=42)
    body = client.post(TOKEN, data={"grant_type": "client_credentials"},
                       headers=basic(meta["client_id"], secret)).get_json()
    assert body["expires_in"] == 42
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 42


def test_a_client_without_the_grant_is_unauthorized_client(app, client):
    meta, secret = register(app, grant_types=["authorization_code"], scope="a",
                            default_scope="a", redirect_uris=["https://app.example/cb"])
    response = client.post(TOKEN, data={"grant_type": "client_credentials"},
                           headers=basic(meta["client_id"], secret))
    assert_oauth_error(response, 400, "unauthorized_client")


def test_ip_allow_list_is_enforced(app, client):
    inside, s1 = register(app, scope="a", default_scope="a", ip_allowlist=["127.0.0.0/8"])
    outside, s2 = register(app, scope="a", default_scope="a", ip_allowlist=["10.0.0.0/8"])
    ok = client.post(TOKEN, data={"grant_type": "client_credentials"},
                     headers=basic(inside["client_id"], s1))
    assert ok.status_code == 200
    refused = client.post(TOKEN, data={"grant_type": "client_credentials"},
                          headers=basic(outside["client_id"], s2))
    assert_oauth_error(refused, 401, "invalid_client")


@pytest.mark.parametrize("data", [
    {}, {"grant_type": ""}, {"grant_type": "password"}, {"grant_type": "implicit"},
    {"grant_type": 'client_"credentials\\\u00e9'},
])
def test_unsupported_grant_types_get_a_clean_400(app, client, data):
    meta, secret = register(app, scope="a", default_scope="a")
    response = client.post(TOKEN, data=data, headers=basic(meta["client_id"], secret))
    assert response.status_code == 400
    assert response.get_json()["error"] in ("unsupported_grant_type", "invalid_request")
    assert response.headers["Cache-Control"] == "no-store"


def test_expired_token_is_still_well_formed_but_inactive_later(app, client):
    meta, secret = register(app, scope="a", default_scope="a", access_token_ttl=5)
    auth = basic(meta["client_id"], secret)
    token = client.post(TOKEN, data={"grant_type": "client_credentials"},
                        headers=auth).get_json()["access_token"]
    assert client.post("/oauth2/introspect", data={"token": token},
                       headers=auth).get_json()["active"] is True
    clock.travel(6)
    assert client.post("/oauth2/introspect", data={"token": token},
                       headers=auth).get_json() == {"active": False}
