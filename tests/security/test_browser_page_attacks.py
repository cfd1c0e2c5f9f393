"""Attacks through the browser pages: CSRF, consent refusal, username enumeration, open
redirects on sign-in and sign-out."""

from __future__ import annotations

import re

import pytest

from authserver.extensions import services
from authserver.models import AuthorizationCode, BrowserSession, Consent
from tests.support.browser import (
    authorization_params,
    decide,
    hidden_fields,
    make_person,
    make_rp,
    pkce_pair,
    query_of,
    session_cookie,
    sign_in,
    signed_in_tokens,
)


def _count(app, model) -> int:
    with services(app).session_factory() as db:
        return db.query(model).count()


def _consent_page(app, client):
    make_person(app)
    rp, _ = make_rp(app)
    sign_in(client)
    _, challenge = pkce_pair()
    params = authorization_params(rp, challenge)
    page = client.get("/oauth2/authorize", query_string=params)
    assert 'name="decision"' in page.get_data(as_text=True)
    return rp, params, page


@pytest.mark.parametrize("token", [None, "", "forged.token.value"])
def test_consent_post_without_the_csrf_token_is_refused(app, client, token):
    _, _, page = _consent_page(app, client)
    fields = hidden_fields(page.get_data(as_text=True))
    fields.pop("csrf_token")
    if token is not None:
        fields["csrf_token"] = token
    response = client.post("/oauth2/authorize", data={**fields, "decision": "allow"})
    assert response.status_code == 400 and "Location" not in response.headers
    assert _count(app, Consent) == 0 and _count(app, AuthorizationCode) == 0


def test_login_post_without_the_csrf_token_is_refused(app, client):
    make_person(app)
    response = client.post("/login", data={"username": "alice",
                                           "password": "correct horse battery staple"})
    assert response.status_code == 400
    assert session_cookie(client) is None and _count(app, BrowserSession) == 0


def test_logout_post_without_the_csrf_token_is_refused(app, client):
    signed_in_tokens(app, client)
    response = client.post("/oauth2/logout", data={"decision": "logout"})
    assert response.status_code == 400
    with services(app).session_factory() as db:
        assert db.query(BrowserSession).one().ended_at is None


def test_consent_deny_is_access_denied(app, client):
    rp, params, page = _consent_page(app, client)
    response = decide(client, page, "deny")
    query = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(rp["redirect_uris"][0])
    assert query["error"] == "access_denied" and query["state"] == params["state"]
    assert "code" not in query and _count(app, AuthorizationCode) == 0


def test_unknown_user_and_wrong_password_look_the_same(app, client):
    make_person(app)
    pages = [sign_in(client, "alice", "wrong password"),
             sign_in(client, "nobody-here", "wrong password")]

    def normalised(response):
        html = response.get_data(as_text=True)
        html = re.sub(r'name="csrf_token" value="[^"]*"', "", html)
        return re.sub(r'name="username" type="text" value="[^"]*"', "", html)

    assert pages[0].status_code == pages[1].status_code
    assert normalised(pages[0]) == normalised(pages[1])


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example",
                                    "/oauth2/authorize@evil.example"])
def test_sign_in_is_no_open_redirect(app, client, target):
    make_person(app)
    response = sign_in(client, next_url=target)
    assert "evil" not in response.headers.get("Location", "")


@pytest.mark.parametrize("query", [
    {"post_logout_redirect_uri": "https://evil.example/"},
    {"post_logout_redirect_uri": "https://rp.example.test/bye/"},
    {"post_logout_redirect_uri": "https://evil.example/", "client_id": "__RP__"},
    {"id_token_hint": "not-a-jwt", "post_logout_redirect_uri": "https://rp.example.test/bye"},
    {"id_token_hint": "__ACCESS__", "post_logout_redirect_uri": "https://rp.example.test/bye"},
])
def test_logout_is_no_open_redirect(app, client, query):
    rp, _, body = signed_in_tokens(app, client,
                                   post_logout_redirect_uris=["https://rp.example.test/bye"])
    query = {k: v.replace("__RP__", rp["client_id"]).replace("__ACCESS__", body["access_token"])
             for k, v in query.items()}
    response = client.get("/oauth2/logout", query_string=query)
    assert response.status_code == 400 and "Location" not in response.headers
    with services(app).session_factory() as db:
        assert db.query(BrowserSession).one().ended_at is None
