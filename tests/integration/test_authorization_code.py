"""The authorization code flow with PKCE through HTTP (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1)."""

from __future__ import annotations

import jwt
import pytest

from authserver import clock
from authserver.extensions import services
from tests.support.browser import (
    audit_events,
    authorization_params,
    decide,
    exchange,
    get_code,
    make_person,
    make_rp,
    pkce_pair,
    query_of,
    sign_in,
)


def _jwks_key(app, token):
    kid = jwt.get_unverified_header(token)["kid"]
    return services(app).keyset.verification_key(kid).public_key


def test_full_flow_issues_access_refresh_and_id_token(app, client):
    user = make_person(app)
    rp, secret = make_rp(app)
    sign_in(client)
    code, verifier, params = get_code(client, rp)
    response = exchange(client, rp, secret, code, verifier)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    assert body["scope"] == "email openid profile"
    claims = jwt.decode(body["id_token"], _jwks_key(app, body["id_token"]),
                        algorithms=["RS256"], audience=rp["client_id"],
                        issuer=services(app).settings.issuer)
    assert claims["sub"] == user.id and claims["nonce"] == params["nonce"]
    assert jwt.get_unverified_header(body["id_token"])["alg"] == "RS256"
    assert {"auth_time", "at_hash", "sid", "acr", "iat", "exp"} <= set(claims)
    access = jwt.decode(body["access_token"], _jwks_key(app, body["access_token"]),
                        algorithms=["ES256", "RS256"], options={"verify_aud": False})
    assert access["sub"] == user.id and access["client_id"] == rp["client_id"]


def _authorize(client, rp, **overrides):
    verifier, challenge = pkce_pair()
    params = authorization_params(rp, challenge, **overrides)
    return client.get("/oauth2/authorize", query_string=params), params, verifier


def test_without_a_session_the_person_signs_in_then_consents(app, client):
    make_person(app)
    rp, secret = make_rp(app)
    response, params, verifier = _authorize(client, rp, login_hint="alice")
    assert response.status_code == 302
    login_url = response.headers["Location"]
    assert login_url.startswith("/login?next=")
    page = client.get(login_url)
    html = page.get_data(as_text=True)
    assert 'value="alice"' in html and "Example App" in html  # login_hint, client name
    back = sign_in(client, next_url=query_of(login_url)["next"])
    assert back.status_code == 303
    consent_page = client.get(back.headers["Location"])
    html = consent_page.get_data(as_text=True)
    assert consent_page.status_code == 200 and "Example App" in html
    assert 'name="decision" value="allow"' in html and 'name="decision" value="deny"' in html
    assert "See your email address" in html and "See your name" in html
    done = decide(client, consent_page)
    assert done.status_code == 303
    query = query_of(done.headers["Location"])
    assert done.headers["Location"].startswith(rp["redirect_uris"][0] + "?")
    assert query["state"] == params["state"]
    assert query["iss"] == services(app).settings.issuer  # RFC 9207
    assert exchange(client, rp, secret, query["code"], verifier).status_code == 200
    (granted,) = audit_events(app, "consent.granted")
    assert granted.client_id == rp["client_id"] and "email openid profile" in granted.details


def test_consent_is_remembered_per_scope_set(app, client):
    make_person(app)
    rp, _ = make_rp(app)
    sign_in(client)
    get_code(client, rp, scope="openid profile")
    response, _, _ = _authorize(client, rp, scope="openid")  # a subset: no page
    assert response.status_code == 302 and "code=" in response.headers["Location"]
    response, _, _ = _authorize(client, rp, scope="openid email")  # something new: asked
    assert response.status_code == 200 and 'name="decision"' in response.get_data(as_text=True)
    response, _, _ = _authorize(client, rp, scope="openid", prompt="consent")
    assert response.status_code == 200 and 'name="decision"' in response.get_data(as_text=True)


def test_skip_consent_clients_are_not_asked_unless_prompt_consent(app, client):
    make_person(app)
    rp, _ = make_rp(app, skip_consent=True)
    sign_in(client)
    response, _, _ = _authorize(client, rp)
    assert response.status_code == 302 and "code=" in response.headers["Location"]
    response, _, _ = _authorize(client, rp, prompt="consent")
    assert response.status_code == 200


def test_prompt_none_with_session_and_consent_returns_a_code(app, client):
    make_person(app)
    rp, _ = make_rp(app, skip_consent=True)
    sign_in(client)
    response, params, _ = _authorize(client, rp, prompt="none")
    query = query_of(response.headers["Location"])
    assert "code" in query and query["state"] == params["state"]


def test_prompt_none_without_consent_is_consent_required(app, client):
    make_person(app)
    rp, _ = make_rp(app)
    sign_in(client)
    response, params, _ = _authorize(client, rp, prompt="none")
    query = query_of(response.headers["Location"])
    assert query["error"] == "consent_required" and query["state"] == params["state"]


@pytest.mark.parametrize("overrides", [{"prompt": "login"}, {"max_age": "0"}])
def test_prompt_login_and_max_age_ask_for_the_password_again(app, client, overrides):
    make_person(app)
    rp, secret = make_rp(app, skip_consent=True)
    sign_in(client)
    clock.travel(5)
    response, params, verifier = _authorize(client, rp, **overrides)
    assert response.headers["Location"].startswith("/login?")
    back = sign_in(client, next_url=query_of(response.headers["Location"])["next"])
    done = client.get(back.headers["Location"])
    code = query_of(done.headers["Location"])["code"]
    body = exchange(client, rp, secret, code, verifier).get_json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["auth_time"] >= int(clock.timestamp()) - 1


def test_max_age_respects_a_recent_sign_in(app, client):
    make_person(app)
    rp, _ = make_rp(app, skip_consent=True)
    sign_in(client)
    response, _, _ = _authorize(client, rp, max_age="300")
    assert "code=" in response.headers["Location"]


@pytest.mark.parametrize(("overrides", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"request": "eyJ.x.y"}, "request_not_supported"),
    ({"resource": "https://not-allowed.example"}, "invalid_target"),
    ({"response_mode": "fragment"}, "invalid_request"),
])
def test_invalid_requests_go_back_to_the_client_with_state_and_iss(app, client, overrides,
                                                                   error):
    make_person(app)
    rp, _ = make_rp(app)
    response, params, _ = _authorize(client, rp, **overrides)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(rp["redirect_uris"][0] + "?")
    query = query_of(response.headers["Location"])
    assert query["error"] == error and query["state"] == params["state"]
    assert query["iss"] == services(app).settings.issuer


def test_a_client_without_the_code_grant_gets_unauthorized_client(app, client):
    other, _ = make_rp(app, grant_types=["client_credentials"],
                       redirect_uris=["https://cc.example.test/cb"])
    response, _, _ = _authorize(client, other, redirect_uri="https://cc.example.test/cb")
    assert response.status_code == 302
    assert query_of(response.headers["Location"])["error"] == "unauthorized_client"


def test_code_expires_after_the_code_ttl(app, client):
    make_person(app)
    rp, secret = make_rp(app, skip_consent=True)
    sign_in(client)
    code, verifier, _ = get_code(client, rp)
    clock.travel(services(app).settings.code_ttl + 1)
    response = exchange(client, rp, secret, code, verifier)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_token_request_redirect_uri_must_match(app, client):
    make_person(app)
    rp, secret = make_rp(app, skip_consent=True,
                         redirect_uris=["https://rp.example.test/cb", "https://rp.example.test/b"])
    sign_in(client)
    code, verifier, _ = get_code(client, rp)
    bad = exchange(client, rp, secret, code, verifier, redirect_uri="https://rp.example.test/b")
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_grant"
    assert exchange(client, rp, secret, code, verifier).status_code == 200


def test_public_client_uses_pkce_without_a_secret(app, client):
    make_person(app)
    rp, secret = make_rp(app, token_endpoint_auth_method="none", skip_consent=True)
    assert secret is None
    sign_in(client)
    code, verifier, _ = get_code(client, rp)
    response = exchange(client, rp, None, code, verifier)
    assert response.status_code == 200, response.get_json()


def test_client_without_refresh_grant_gets_no_refresh_token(app, client):
    make_person(app)
    rp, secret = make_rp(app, grant_types=["authorization_code"], skip_consent=True)
    sign_in(client)
    code, verifier, _ = get_code(client, rp)
    body = exchange(client, rp, secret, code, verifier).get_json()
    assert "refresh_token" not in body and "id_token" in body


def test_id_token_uses_the_clients_registered_algorithm(app, client):
    make_person(app)
    rp, secret = make_rp(app, id_token_signed_response_alg="ES256", skip_consent=True)
    sign_in(client)
    code, verifier, _ = get_code(client, rp)
    body = exchange(client, rp, secret, code, verifier).get_json()
    assert jwt.get_unverified_header(body["id_token"])["alg"] == "ES256"
    jwt.decode(body["id_token"], _jwks_key(app, body["id_token"]), algorithms=["ES256"],
               audience=rp["client_id"])


def test_without_openid_there_is_no_id_token(app, client):
    make_person(app)
    rp, secret = make_rp(app, scope="profile orders:read", skip_consent=True)
    sign_in(client)
    code, verifier, _ = get_code(client, rp, scope="orders:read", nonce=None)
    body = exchange(client, rp, secret, code, verifier).get_json()
    assert "id_token" not in body and body["scope"] == "orders:read"


def test_resource_selects_the_access_token_audience(app, client):
    make_person(app)
    rp, secret = make_rp(app, skip_consent=True,
                         allowed_audiences=["https://api.example.test", "https://b.example"])
    sign_in(client)
    code, verifier, _ = get_code(client, rp, resource="https://b.example")
    body = exchange(client, rp, secret, code, verifier).get_json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://b.example"
