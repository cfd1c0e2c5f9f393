"""UserInfo (OIDC Core §5.3): bearer tokens, claims per scope, RFC 6750 errors."""

from __future__ import annotations

import pytest

from tests.support.browser import (
    exchange,
    get_code,
    make_person,
    make_rp,
    refresh,
    sign_in,
    signed_in_tokens,
)
from tests.support.factories import client_credentials_token, make_client


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_returns_the_claims_of_the_granted_scopes(app, client, method):
    _, _, body = signed_in_tokens(app, client)
    response = client.open("/oauth2/userinfo", method=method,
                           headers=_bearer(body["access_token"]))
    assert response.status_code == 200, response.get_json()
    claims = response.get_json()
    assert claims["preferred_username"] == "alice" and claims["name"] == "Alice Example"
    assert claims["email"] == "alice@example.test" and claims["email_verified"] is True
    assert isinstance(claims["updated_at"], int) and claims["sub"]
    assert response.headers["Cache-Control"] == "no-store"


def test_userinfo_accepts_the_token_in_a_form_body(app, client):
    _, _, body = signed_in_tokens(app, client)
    response = client.post("/oauth2/userinfo", data={"access_token": body["access_token"]})
    assert response.status_code == 200 and response.get_json()["email"]


def test_only_openid_gives_only_sub(app, client):
    make_person(app)
    rp, secret = make_rp(app, skip_consent=True)
    sign_in(client)
    code, verifier, _ = get_code(client, rp, scope="openid")
    token = exchange(client, rp, secret, code, verifier).get_json()["access_token"]
    claims = client.get("/oauth2/userinfo", headers=_bearer(token)).get_json()
    assert list(claims) == ["sub"]


def test_a_token_without_openid_is_insufficient_scope(app, client):
    make_person(app)
    rp, secret = make_rp(app, skip_consent=True)
    sign_in(client)
    code, verifier, _ = get_code(client, rp, scope="profile", nonce=None)
    token = exchange(client, rp, secret, code, verifier).get_json()["access_token"]
    response = client.get("/oauth2/userinfo", headers=_bearer(token))
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge


def test_no_token_is_a_bare_bearer_challenge(client):
    response = client.get("/oauth2/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["WWW-Authenticate"]  # RFC 6750 §3.1


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_an_invalid_token_is_invalid_token(client, token):
    response = client.get("/oauth2/userinfo", headers=_bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_revoked_family_token_is_refused(app, client):
    rp, secret, first = signed_in_tokens(app, client)
    refresh(client, rp, secret, first["refresh_token"])
    refresh(client, rp, secret, first["refresh_token"])  # reuse: family revoked
    response = client.get("/oauth2/userinfo", headers=_bearer(first["access_token"]))
    assert response.status_code == 401


def test_a_client_credentials_token_names_no_user(app, client):
    cc, cc_secret = make_client(app, scope="openid", default_scope="openid")
    token = client_credentials_token(app, cc["client_id"], cc_secret, scope="openid")
    response = client.get("/oauth2/userinfo", headers=_bearer(token))
    assert response.status_code == 401
