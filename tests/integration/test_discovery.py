"""Discovery (OIDC Discovery 1.0, RFC 8414) and the JWKS through HTTP."""

import pytest

from authserver.config import Settings

REQUIRED = [
    "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
    "introspection_endpoint", "revocation_endpoint", "end_session_endpoint",
    "response_types_supported", "grant_types_supported", "code_challenge_methods_supported",
    "token_endpoint_auth_methods_supported", "id_token_signing_alg_values_supported",
    "scopes_supported", "subject_types_supported", "claims_supported",
]


@pytest.mark.parametrize("path", [
    "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"])
def test_discovery_advertises_the_contract(client, settings: Settings, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.get_json()
    for name in REQUIRED:
        assert name in doc, name
    assert doc["issuer"] == settings.issuer
    assert doc["response_types_supported"] == ["code"]
    assert set(doc["grant_types_supported"]) >= {
        "authorization_code", "client_credentials", "refresh_token"}
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert set(doc["token_endpoint_auth_methods_supported"]) >= {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
    for name in REQUIRED:
        if name.endswith("_endpoint") or name == "jwks_uri":
            assert doc[name].startswith(settings.issuer + "/")


@pytest.mark.settings(issuer="https://auth.example.com")
def test_discovery_uses_the_configured_issuer(client):
    doc = client.get("/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == "https://auth.example.com"
    assert doc["token_endpoint"].startswith("https://auth.example.com/")


def test_jwks_has_public_members_only_and_a_cache_lifetime(client, settings):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert f"max-age={settings.jwks_max_age}" in response.headers["Cache-Control"]
    keys = response.get_json()["keys"]
    # an active and a pending key per algorithm
    assert sorted(k["alg"] for k in keys) == ["ES256", "ES256", "RS256", "RS256"]
    for key in keys:
        assert key["kid"] and key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key), key


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "keys": "ok"}


def test_readiness_fails_when_the_database_is_gone(tmp_path, keys_dir):
    from authserver import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/nope/../missing.db",
                              keys_dir=str(keys_dir)))
    response = app.test_client().get("/readyz")
    app.extensions["authserver"].engine.dispose()
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"


def test_unknown_paths_and_methods_get_json_errors(client):
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    response = client.post("/.well-known/jwks.json")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
